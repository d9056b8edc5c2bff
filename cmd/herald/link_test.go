package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldpush/herald/platform"
)

func TestLinkSecurity(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	pin := strings.Repeat("ab", 32)
	tests := []struct {
		name     string
		cfg      platform.Config
		insecure bool // want errInsecureService
		ok       bool
		trust    bool
	}{
		{"embedded", platform.Config{}, false, true, true},
		{"loopback http", platform.Config{Service: "http://127.0.0.1:8790"}, false, true, false},
		{"loopback v6", platform.Config{Service: "http://[::1]:8790"}, false, true, false},
		{"localhost", platform.Config{Service: "http://localhost:8790"}, false, true, false},
		{"remote http", platform.Config{Service: "http://push.example.com"}, true, false, false},
		{"remote http by address", platform.Config{Service: "http://192.0.2.7:8790"}, true, false, false},
		{"a name that starts like loopback", platform.Config{Service: "http://127.0.0.1.evil.example"}, true, false, false},
		{"remote http, insecure", platform.Config{Service: "http://push.example.com", Insecure: true}, false, true, false},
		{"several loopback nodes", platform.Config{Service: "http://127.0.0.1:8791,http://127.0.0.1:8792"}, false, true, false},
		{"several nodes, one remote http", platform.Config{Service: "http://127.0.0.1:8791, http://push.example.com"}, true, false, false},
		{"several https nodes with a pin", platform.Config{Service: "https://a.example.com,https://b.example.com", ServicePin: "sha256/" + pin}, false, true, false},
		{"https", platform.Config{Service: "https://push.example.com"}, false, true, false},
		{"https with a pin", platform.Config{Service: "https://push.example.com", ServicePin: "sha256/" + pin}, false, true, false},
		{"https with a bad pin", platform.Config{Service: "https://push.example.com", ServicePin: "abc"}, false, false, false},
		{"https with a CA that is no PEM", platform.Config{Service: "https://push.example.com", ServiceCA: ca}, false, false, false},
		{"https with a missing CA", platform.Config{Service: "https://push.example.com", ServiceCA: ca + ".gone"}, false, false, false},
		{"a pin for http", platform.Config{Service: "http://127.0.0.1:8790", ServicePin: pin}, false, false, false},
		{"a CA for the embedded service", platform.Config{ServiceCA: ca}, false, false, false},
		{"ws scheme", platform.Config{Service: "ws://127.0.0.1:8790"}, false, false, false},
		{"tls for the embedded service", platform.Config{TLS: true, Listen: "127.0.0.1:8790"}, false, true, true},
		{"tls on ::1", platform.Config{TLS: true, Listen: "[::1]:8790"}, false, true, true},
		{"tls on localhost", platform.Config{TLS: true, Listen: "localhost:8790"}, false, true, true},
		{"tls on every address", platform.Config{TLS: true, Listen: ":8790"}, false, false, false},
		{"tls on a LAN address", platform.Config{TLS: true, Listen: "192.168.1.5:8790"}, false, false, false},
		{"tls with another service", platform.Config{TLS: true, Service: "https://push.example.com"}, false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lc, err := linkSecurity(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if errors.Is(err, errInsecureService) != tt.insecure {
				t.Fatalf("err = %v, want errInsecureService %v", err, tt.insecure)
			}
			if lc.TrustRefusals != tt.trust {
				t.Fatalf("TrustRefusals = %v, want %v", lc.TrustRefusals, tt.trust)
			}
			if strings.HasPrefix(tt.cfg.Service, "https") && tt.ok && lc.TLS == nil {
				t.Fatal("no TLS configuration for an https service")
			}
		})
	}
}

// TestRunRefusesInsecureService runs the command as a user would: a plain
// http service off loopback is refused before anything starts, and
// --insecure (or the config key) lets it through to the next check.
func TestRunRefusesInsecureService(t *testing.T) {
	dir := t.TempDir()
	args := []string{"run", "--config", filepath.Join(dir, "none.toml"), "--data", dir, "--socket", filepath.Join(dir, "s"),
		"--service", "http://192.0.2.7:8790"}
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "not on loopback") {
		t.Fatalf("exit %d, stderr %q; want 2 and the reason", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "herald.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the daemon started anyway: herald.db %v", err)
	}

	conf := filepath.Join(dir, "herald.toml")
	if err := os.WriteFile(conf, []byte("insecure = true\nservice_pin = \"abc\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args[2] = conf
	errb.Reset()
	// With insecure set the URL passes; the pin (meaningless for http)
	// is what is refused now, which shows the key was read.
	if code := run(args, &out, &errb); code != 2 || !strings.Contains(errb.String(), "need an https service") {
		t.Fatalf("with insecure = true: exit %d, stderr %q; want 2 for the pin", code, errb.String())
	}
}

// TestEmulateRefusesInsecureService: herald emulate --service follows
// herald run's rule: a plain http service off loopback is refused (exit 2,
// before anything is created) unless --insecure; --service-ca and
// --service-pin need an https service, and a CA file that is not there is
// refused before anything starts.
func TestEmulateRefusesInsecureService(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"plain http off loopback", []string{"--service", "http://192.0.2.7:8790"}, "not on loopback"},
		{"by name", []string{"--service", "http://push.example.com"}, "not on loopback"},
		{"loopback-looking name", []string{"--service", "http://127.0.0.1.evil.example"}, "not on loopback"},
		{"pin on plain http", []string{"--service", "http://192.0.2.7:8790", "--insecure", "--service-pin", "abc"}, "need an https service"},
		{"CA on loopback http", []string{"--service", "http://127.0.0.1:8790", "--service-ca", "ca.pem"}, "need an https service"},
		{"CA without a service", []string{"--service-ca", "ca.pem"}, "need an https service"},
		{"missing CA file", []string{"--service", "https://push.example.com", "--service-ca", "/nonexistent/ca.pem"}, "ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			args := append([]string{"emulate", "--data", dir, "--socket", filepath.Join(t.TempDir(), "s")}, tt.args...)
			var out, errb bytes.Buffer
			if code := run(args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errb.String(), tt.want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the emulator started anyway: data directory %v", err)
			}
		})
	}
}
