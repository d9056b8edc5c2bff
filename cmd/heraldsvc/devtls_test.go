package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldpush/herald/mpns"
)

// --tls-self-signed refuses what its certificate cannot serve, and TLS
// flags that contradict it, before anything starts.
func TestServeSelfSignedRefusals(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "svc.db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-self-signed", "--tls-listen", ":8443"}, "loopback only"},
		{[]string{"--tls-self-signed", "--tls-listen", "0.0.0.0:8443"}, "loopback only"},
		{[]string{"--tls-self-signed", "--tls-listen", "192.168.1.5:8443"}, "loopback only"},
		{[]string{"--tls-self-signed", "--tls-listen", "example.org:8443"}, "loopback only"},
		{[]string{"--tls-self-signed", "--tls-listen", "127.0.0.1"}, "--tls-listen"},
		{[]string{"--tls-self-signed", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, "drop --tls-cert"},
		{[]string{"--tls-dir", dir}, "--tls-dir needs --tls-self-signed"},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"serve", "--listen", "127.0.0.1:0", "--db", db}, tc.args...)
		if code := run(args, strings.NewReader(""), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("heraldsvc %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "heraldsvc-tls")); err == nil {
		t.Error("a refused start made the CA")
	}
}

// A corrupt CA is refused with its name, and exit 1.
func TestServeSelfSignedCorruptCA(t *testing.T) {
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	os.MkdirAll(tlsDir, 0o700)
	os.WriteFile(filepath.Join(tlsDir, "ca.pem"), []byte("not a certificate"), 0o644)
	os.WriteFile(filepath.Join(tlsDir, "ca-key.pem"), []byte("not a key"), 0o600)
	var stdout, stderr bytes.Buffer
	code := run([]string{"serve", "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "svc.db"), "--tls-self-signed",
		"--tls-listen", "127.0.0.1:0", "--tls-dir", tlsDir}, strings.NewReader(""), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), filepath.Join(tlsDir, "ca.pem")) || !strings.Contains(stderr.String(), "corrupt") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// heraldsvc send says why a 200 Suppressed was not delivered, and what
// binds the channel, as the service words it (server/notify.go).
func TestSendSuppressedSaysWhy(t *testing.T) {
	for _, tc := range []struct {
		kind, reason string
		want         []string
	}{
		{"tile", "channel not bound to tile", []string{"not bound to tile notifications", "herald open APP --tile", `{"tile": true}`}},
		{"toast", "channel not bound to toast", []string{"not bound to toast notifications", "herald open APP --toast"}},
		{"tile", "tile not pinned", []string{"not pinned", "herald pin APP TILE_ID"}},
		{"toast", "device power is low", []string{"device power is low", "herald power normal"}},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set(mpns.HeaderNotificationStatus, mpns.StatusSuppressed)
				w.Header().Set(mpns.HeaderSubscriptionStatus, mpns.SubscriptionActive)
				w.Header().Set(mpns.HeaderDeviceConnectionStatus, mpns.DeviceConnected)
				w.Write([]byte(tc.reason + "\n"))
			}))
			defer srv.Close()
			var stdout, stderr bytes.Buffer
			args := []string{"send", tc.kind, srv.URL + "/throttledthirdparty/01.00/x", "--text1", "T"}
			if tc.kind == "tile" {
				args = []string{"send", tc.kind, srv.URL + "/throttledthirdparty/01.00/x", "--title", "T"}
			}
			if code := run(args, strings.NewReader(""), &stdout, &stderr); code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			if !strings.Contains(stdout.String(), `"error":"`+tc.reason+`"`) {
				t.Errorf("stdout %q lacks the service's reason", stdout.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q lacks %q", stderr.String(), w)
				}
			}
		})
	}
}
