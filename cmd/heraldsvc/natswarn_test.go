package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestNATSWarnings(t *testing.T) {
	for _, c := range []struct {
		name             string
		urls             string
		credentials, tls bool
		noCreds, noTLS   bool
	}{
		{name: "loopback without anything", urls: "nats://127.0.0.1:4222,nats://[::1]:4223,nats://localhost:4224"},
		{name: "remote without credentials", urls: "nats://10.0.0.5:4222", noCreds: true, noTLS: true},
		{name: "a name may be anywhere", urls: "nats://nats.internal:4222", noCreds: true, noTLS: true},
		{name: "one remote among loopback", urls: "nats://127.0.0.1:4222,nats://10.0.0.5:4222", noCreds: true, noTLS: true},
		{name: "remote with an nkey, plain", urls: "nats://10.0.0.5:4222", credentials: true, noTLS: true},
		{name: "remote with an nkey over tls://", urls: "tls://10.0.0.5:4222", credentials: true},
		{name: "remote with an nkey and a CA", urls: "nats://10.0.0.5:4222", credentials: true, tls: true},
		{name: "user:pass in the URL, never logged", urls: "nats://herald:s3cret@10.0.0.5:4222", noTLS: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws := natsWarnings(c.urls, c.credentials, c.tls)
			all := strings.Join(ws, "\n")
			if got := strings.Contains(all, "without credentials"); got != c.noCreds {
				t.Errorf("credentials warning %v, want %v: %q", got, c.noCreds, all)
			}
			if got := strings.Contains(all, "without TLS"); got != c.noTLS {
				t.Errorf("TLS warning %v, want %v: %q", got, c.noTLS, all)
			}
			if strings.Contains(all, "s3cret") {
				t.Errorf("a warning shows the password: %q", all)
			}
		})
	}
	if got := redactURLs("nats://herald:s3cret@10.0.0.5:4222,nats://127.0.0.1:4222"); strings.Contains(got, "s3cret") {
		t.Errorf("redacted: %q", got)
	}
}

// heraldsvc serve with a non-loopback NATS and no credentials says so at
// warn level before anything else, and still starts (and waits).
func TestServeWarnsOfOpenNATS(t *testing.T) {
	var stderr bytes.Buffer
	// A listen address that cannot be: the node warns, then exits.
	code := run([]string{"serve", "--store", "nats://192.0.2.1:4222", "--listen", "256.0.0.1:1"}, strings.NewReader(""), io.Discard, &stderr)
	if code == 0 {
		t.Fatal("serve with a listen address that cannot be exited 0")
	}
	if !strings.Contains(stderr.String(), "level=WARN") || !strings.Contains(stderr.String(), "without credentials") {
		t.Fatalf("no warning about NATS without credentials:\n%s", stderr.String())
	}
}
