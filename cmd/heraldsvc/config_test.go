package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/heraldpush/herald/platform"
)

// runConfig runs `heraldsvc config args...` and returns its exit code,
// standard output and standard error.
func runConfig(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"config"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// printedConfig returns what `heraldsvc config args...` prints without
// its first line, which names the file.
func printedConfig(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := runConfig(t, args...)
	if code != 0 {
		t.Fatalf("heraldsvc config %q: exit %d: %s", args, code, errs)
	}
	first, rest, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(first, "# effective configuration") {
		t.Fatalf("first line %q", first)
	}
	return rest
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "heraldsvc.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func decodeKeys(t *testing.T, s string) map[string]any {
	t.Helper()
	m := map[string]any{}
	if _, err := toml.Decode(s, &m); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return m
}

// everyKey sets every serve key to a value other than its default.
const everyKey = `# heraldsvc.toml
listen = "127.0.0.1:18790"
db = "/var/lib/heraldsvc/svc.db"
public_url = "https://push.example.net"
inactive_after = "24h"
forget_devices_after = "720h"
queue_depth = 100
log_level = "debug"
tls_listen = "127.0.0.1:18443"
tls_cert = "/etc/heraldsvc/cert.pem"
tls_key = "/etc/heraldsvc/key.pem"
tls_client_ca = "/etc/heraldsvc/senders-ca.pem"
tls_self_signed = true
tls_dir = "/var/lib/heraldsvc/tls"
auth_url = "https://push.example.net:8443"
daily_quota = -1
channel_rate = 2.5
channel_burst = 10
sender_rate = -1
sender_burst = 20
max_in_flight = 64
max_body_reads_per_source = -1
slow_store = "250ms"
max_body = 1024
max_header = 2048
max_multicast = 10
max_devices_per_source = 5
max_pending_hellos_per_source = 16
max_pending_hellos = 1000
limit_loopback = true
read_header_timeout = "2s"
read_timeout = "10s"
debug_listen = "127.0.0.1:6060"
store = "nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224"
store_replicas = 3
store_prefix = "push"
nats_creds = "/etc/heraldsvc/nats.creds"
nats_nkey = "/etc/heraldsvc/nats.nk"
nats_user = "svc"
nats_password = "secret"
nats_tls_cert = "/etc/heraldsvc/nats-cert.pem"
nats_tls_key = "/etc/heraldsvc/nats-key.pem"
nats_tls_ca = "/etc/heraldsvc/nats-ca.pem"
`

// TestServeConfigRoundTrip: `heraldsvc config > f && heraldsvc serve
// --config f`: with every key set, the printed file holds every key with
// the file's value, loads back to the same print, and every key is
// documented; so is the file of defaults.
func TestServeConfigRoundTrip(t *testing.T) {
	t.Setenv(EnvConfig, "")
	set := decodeKeys(t, everyKey)
	for _, tc := range []struct{ name, file string }{{"every key set", everyKey}, {"defaults", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			out1 := printedConfig(t, "--config", writeConfig(t, tc.file))
			out2 := printedConfig(t, "--config", writeConfig(t, out1))
			if out1 != out2 {
				t.Fatalf("printed again differs:\n%s\nfirst:\n%s", out2, out1)
			}
			printed := decodeKeys(t, out1)
			if tc.file == "" {
				if defaults := decodeKeys(t, printedConfig(t)); !reflect.DeepEqual(printed, defaults) {
					t.Errorf("an empty file is not the defaults:\n%v\n%v", printed, defaults)
				}
				return
			}
			for k, v := range set {
				if f, ok := v.(float64); ok && f == float64(int64(f)) {
					v = int64(f)
				}
				got := printed[k]
				if g, ok := got.(float64); ok && g == float64(int64(g)) {
					got = int64(g)
				}
				if fmt.Sprint(got) != fmt.Sprint(v) && !durationEqual(got, v) {
					t.Errorf("%s printed as %v, the file says %v", k, printed[k], v)
				}
			}
			for k := range printed {
				if _, ok := set[k]; !ok {
					t.Errorf("key %s is printed but the test does not set it: add it to everyKey", k)
				}
			}
		})
	}

	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, svcDoc, ok := bytes.Cut(doc, []byte("## heraldsvc"))
	if !ok {
		t.Fatal("docs/configuration.md has no heraldsvc section")
	}
	for k := range decodeKeys(t, printedConfig(t)) {
		row := fmt.Sprintf("| `%s` | `--%s` |", k, strings.ReplaceAll(k, "_", "-"))
		if !bytes.Contains(svcDoc, []byte(row)) {
			t.Errorf("docs/configuration.md's heraldsvc section lacks the row %q", row)
		}
	}
}

func durationEqual(a, b any) bool {
	as, ok1 := a.(string)
	bs, ok2 := b.(string)
	if !ok1 || !ok2 {
		return false
	}
	var da, db platform.Duration
	return da.UnmarshalText([]byte(as)) == nil && db.UnmarshalText([]byte(bs)) == nil && da == db
}

// Flags win over the file, the file over the defaults; --config wins over
// HERALDSVC_CONFIG, which names the file when --config is not given.
func TestServeConfigPrecedence(t *testing.T) {
	file := writeConfig(t, "queue_depth = 9\nmax_multicast = 3\nlimit_loopback = true\n")
	other := writeConfig(t, "queue_depth = 11\n")
	t.Setenv(EnvConfig, "")
	for _, tc := range []struct {
		name string
		env  string
		args []string
		want map[string]any
	}{
		{"file", "", []string{"--config", file}, map[string]any{"queue_depth": int64(9), "max_multicast": int64(3), "limit_loopback": true}},
		{"flags win", "", []string{"--config", file, "--queue-depth", "7", "--limit-loopback=false"},
			map[string]any{"queue_depth": int64(7), "max_multicast": int64(3), "limit_loopback": false}},
		{"flag before --config wins too", "", []string{"--queue-depth", "7", "--config", file}, map[string]any{"queue_depth": int64(7)}},
		{"environment", file, nil, map[string]any{"queue_depth": int64(9)}},
		{"--config wins over the environment", other, []string{"--config", file}, map[string]any{"queue_depth": int64(9)}},
		{"--config= turns the environment's file off", file, []string{"--config="}, map[string]any{"queue_depth": int64(500), "max_multicast": int64(100)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvConfig, tc.env)
			got := decodeKeys(t, printedConfig(t, tc.args...))
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

// Every kind of bad file is refused before anything starts, naming
// file:line and the key; nothing is printed.
func TestServeConfigErrors(t *testing.T) {
	t.Setenv(EnvConfig, "")
	tests := []struct {
		name    string
		body    string
		wantErr error // checked against platform's sentinel through the message
		want    []string
	}{
		{"unknown key", "queue_depth = 5\n\nqueue_dpeth = 6\n", platform.ErrUnknownKey, []string{":3: unknown key \"queue_dpeth\""}},
		{"flag spelling", "tls-listen = \"127.0.0.1:0\"\n", platform.ErrUnknownKey, []string{":1: unknown key \"tls-listen\" (the key of --tls-listen is tls_listen)"}},
		{"upper case", "\nQUEUE_DEPTH = 5\n", platform.ErrUnknownKey, []string{":2: unknown key \"QUEUE_DEPTH\""}},
		{"config names no other file", "config = \"/etc/other.toml\"\n", platform.ErrUnknownKey, []string{":1: unknown key \"config\""}},
		{"a table", "[limits]\nqueue_depth = 5\n", platform.ErrUnknownKey, []string{":1: unknown key \"limits\""}},
		{"help is no key", "help = true\n", platform.ErrUnknownKey, []string{":1: unknown key \"help\""}},
		{"string for an integer", "queue_depth = \"5\"\n", platform.ErrInvalidConfig, []string{":1: invalid configuration: queue_depth: want an integer, not the string \"5\""}},
		{"float for an integer", "queue_depth = 5.5\n", platform.ErrInvalidConfig, []string{":1:", "queue_depth: want an integer, not the float 5.5"}},
		{"integer for a bool", "limit_loopback = 1\n", platform.ErrInvalidConfig, []string{":1:", "limit_loopback: want true or false"}},
		{"integer for a duration", "read_timeout = 15\n", platform.ErrInvalidConfig, []string{":1:", "read_timeout: want a duration such as \"30s\", not the integer 15"}},
		{"bad duration", "\n\nslow_store = \"1 second\"\n", platform.ErrInvalidConfig, []string{":3:", "slow_store: \"1 second\": want a duration"}},
		{"array for a string", "listen = [\"127.0.0.1:1\"]\n", platform.ErrInvalidConfig, []string{":1:", "listen: want a string, not an array"}},
		{"date for a string", "db = 1979-05-27\n", platform.ErrInvalidConfig, []string{":1:", "db: want a string, not a date or time"}},
		{"negative depth", "queue_depth = -1\n", platform.ErrInvalidConfig, []string{":1:", "queue_depth -1: must be 0-1000000"}},
		{"body past MPNS's", "max_body = 4096\n", platform.ErrInvalidConfig, []string{":1:", "max_body 4096: must be 1-3072"}},
		{"slots past any use", "max_in_flight = 9223372036854775807\n", platform.ErrInvalidConfig, []string{":1:", "max_in_flight 9223372036854775807: must be 0-1048576"}},
		{"negative slots", "max_in_flight = -1\n", platform.ErrInvalidConfig, []string{":1:", "max_in_flight -1"}},
		{"negative burst", "channel_burst = -5\n", platform.ErrInvalidConfig, []string{":1:", "channel_burst -5"}},
		{"rate not a number", "channel_rate = nan\n", platform.ErrInvalidConfig, []string{":1:", "channel_rate NaN"}},
		{"infinite rate", "sender_rate = inf\n", platform.ErrInvalidConfig, []string{":1:", "sender_rate +Inf"}},
		{"integer past int64", "queue_depth = 99999999999999999999\n", nil, []string{"line 1", "out of range"}},
		{"negative duration", "inactive_after = \"-1h\"\n", platform.ErrInvalidConfig, []string{":1:", "inactive_after -1h0m0s: must be a duration of 0 or more"}},
		{"listen without port", "listen = \"127.0.0.1\"\n", platform.ErrInvalidConfig, []string{":1:", "listen 127.0.0.1: must be host:port"}},
		{"relative public URL", "public_url = \"push.example.net\"\n", platform.ErrInvalidConfig, []string{":1:", "public_url push.example.net: must be an absolute"}},
		{"bad log level", "log_level = \"loud\"\n", platform.ErrInvalidConfig, []string{":1:", "log_level loud: must be debug, info, warn or error"}},
		{"store replicas", "store_replicas = 9\n", platform.ErrInvalidConfig, []string{":1:", "store_replicas 9: must be 1-5, or 0 for the default"}},
		{"duplicate key", "queue_depth = 5\nqueue_depth = 6\n", nil, []string{"line 2", "already been defined"}},
		{"syntax", "queue_depth = \n", nil, []string{"line 1"}},
		{"nested too deep", "\nlisten = " + strings.Repeat("[", 50000) + "\n", platform.ErrConfigShape, []string{":2:"}},
		{"every problem at once", "queue_dpeth = 1\nmax_body = 0\n", platform.ErrUnknownKey, []string{":1: unknown key", ":2: invalid configuration: max_body 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.body)
			code, out, errs := runConfig(t, "--config", path)
			if code != 2 || out != "" {
				t.Fatalf("exit %d, stdout %q; want 2 and nothing printed (stderr %q)", code, out, errs)
			}
			if !strings.HasPrefix(errs, "heraldsvc config: ") || !strings.Contains(errs, path) {
				t.Errorf("stderr %.300q does not start with the command and name the file", errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %.300q lacks %q", errs, w)
				}
			}
			if tt.wantErr != nil {
				// The sentinel's text, as errors.Is found it in the
				// loader's error before it was printed.
				if !strings.Contains(errs, tt.wantErr.Error()) {
					t.Errorf("stderr %.300q lacks %q", errs, tt.wantErr)
				}
			}
			// serve refuses the same file the same way, before starting.
			var sout, serr bytes.Buffer
			if code := run([]string{"serve", "--config", path, "--listen", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "svc.db")},
				strings.NewReader(""), &sout, &serr); code != 2 || strings.Contains(sout.String(), "listening") {
				t.Errorf("serve: exit %d, stdout %q", code, sout.String())
			}
		})
	}
}

// A file named explicitly must be there; a huge file or a device is
// refused unread.
func TestServeConfigFileRefused(t *testing.T) {
	t.Setenv(EnvConfig, "")
	dir := t.TempDir()
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# padding padding padding\n"), platform.MaxConfigSize/26+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing.toml"), "no such file"},
		{"directory", dir, dir},
		{"huge", big, "more than 262144 bytes"},
		{"endless", "/dev/zero", "more than 262144 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.path); tc.name == "endless" && err != nil {
				t.Skip("no /dev/zero")
			}
			code, _, errs := runConfig(t, "--config", tc.path)
			if code != 2 || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, errs, tc.want)
			}
		})
	}
	t.Setenv(EnvConfig, filepath.Join(dir, "missing.toml"))
	if code, _, errs := runConfig(t); code != 2 || !strings.Contains(errs, "missing.toml") {
		t.Errorf("%s naming a missing file: exit %d, stderr %q", EnvConfig, code, errs)
	}
}

// The same bounds hold for flags: values that would crash the service
// (a negative --max-in-flight cannot size its slots) or mean nothing are
// refused, naming the flag.
func TestServeFlagRanges(t *testing.T) {
	t.Setenv(EnvConfig, "")
	for _, args := range [][]string{
		{"--max-in-flight", "-1"},
		{"--max-in-flight", "9223372036854775807"},
		{"--channel-burst", "-5"},
		{"--channel-rate", "NaN"},
		{"--sender-rate", "-Inf"},
		{"--queue-depth", "-3"},
		{"--max-body", "0"},
		{"--listen", "nowhere"},
		{"--public-url", "/relative"},
		{"--read-timeout", "-1s"},
		{"--log-level", "loud"},
	} {
		code, out, errs := runConfig(t, args...)
		if code != 2 || out != "" || !strings.Contains(errs, args[0]+" ") {
			t.Errorf("config %q: exit %d, stderr %q; want 2 naming the flag", args, code, errs)
		}
		var serr bytes.Buffer
		if code := run(append([]string{"serve", "--db", filepath.Join(t.TempDir(), "svc.db")}, args...), strings.NewReader(""), &bytes.Buffer{}, &serr); code != 2 {
			t.Errorf("serve %q: exit %d, stderr %q; want 2", args, code, serr.String())
		}
	}
	// The defaults pass the checks, and the documented special values too.
	if code, _, errs := runConfig(t, "--daily-quota", "-1", "--channel-rate", "-1", "--max-body-reads-per-source", "-1", "--forget-devices-after", "0"); code != 0 {
		t.Errorf("documented values refused: %s", errs)
	}
}

// serve listens where the file says: a file whose listen address is taken
// ends in the port-in-use error for that address.
func TestServeUsesConfigFile(t *testing.T) {
	t.Setenv(EnvConfig, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	path := writeConfig(t, fmt.Sprintf("listen = %q\ndb = %q\n", ln.Addr(), filepath.Join(t.TempDir(), "svc.db")))
	var stdout, stderr bytes.Buffer
	code := run([]string{"serve", "--config", path}, strings.NewReader(""), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), ln.Addr().String()+" is in use") {
		t.Fatalf("exit %d, stderr %q; want the file's address in use", code, stderr.String())
	}
}

// `heraldsvc config --help` and a positional argument.
func TestConfigCommandLine(t *testing.T) {
	t.Setenv(EnvConfig, "")
	if code, out, _ := runConfig(t, "--help"); code != 0 || !strings.Contains(out, "usage: heraldsvc config [serve flags]") || !strings.Contains(out, "-queue-depth") {
		t.Errorf("config --help: exit %d, %q", code, out)
	}
	if code, _, errs := runConfig(t, "extra"); code != 2 || !strings.Contains(errs, `unexpected argument "extra"`) {
		t.Errorf("config extra: exit %d, %q", code, errs)
	}
	if code, out, _ := runConfig(t); code != 0 || !strings.HasPrefix(out, "# effective configuration of heraldsvc serve (file: none)\n") {
		t.Errorf("config: exit %d, %q", code, out)
	}
}
