package channel_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// runLink runs a link with a real clock and quick retries until the test
// ends.
func runLink(t *testing.T, cfg channel.Config) *channel.Link {
	t.Helper()
	cfg.Logger = testenv.Logger(t)
	cfg.BackoffMin, cfg.BackoffMax = 5*time.Millisecond, 20*time.Millisecond
	cfg.Rand = func() float64 { return 0.5 }
	l, err := channel.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l
}

// TestLinkTLS dials a service that serves devices on TLS without asking
// for client certificates, over real loopback TLS: the link accepts the
// certificate only if it chains to the configured CA and matches the pin.
func TestLinkTLS(t *testing.T) {
	pki := testenv.NewPKI(t)
	svc := testenv.Service(t, "", server.ServeConfig{TLSListen: "127.0.0.1:0", TLS: server.TLSFiles{Cert: pki.CertFile, Key: pki.KeyFile}})
	if svc.AuthURL() != "" {
		t.Fatalf("TLS without a client CA offers authenticated channels at %s", svc.AuthURL())
	}
	url := "https://" + svc.TLSAddr().String()
	leafSPKI := sha256.Sum256(pki.Leaf.RawSubjectPublicKeyInfo)
	caCert := sha256.Sum256(pki.CA.Raw)
	tests := []struct {
		name    string
		ca      string
		pin     string
		connect bool
		failure string // in the link's last error when it does not connect
	}{
		{"the CA bundle", pki.CAFile, "", true, ""},
		{"the system's roots", "", "", false, "certificate"},
		{"pin of the service's public key", pki.CAFile, hex.EncodeToString(leafSPKI[:]), true, ""},
		{"pin of the CA certificate, base64", pki.CAFile, "sha256/" + base64.StdEncoding.EncodeToString(caCert[:]), true, ""},
		{"another pin", pki.CAFile, strings.Repeat("00", 32), false, channel.ErrPinMismatch.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc, err := channel.LoadClientTLS(tt.ca, tt.pin)
			if err != nil {
				t.Fatal(err)
			}
			h := newMemHandler("tls")
			l := runLink(t, channel.Config{Service: url, Handler: h, TLS: tc})
			if tt.connect {
				testenv.Eventually(t, testTimeout, "link up over TLS", l.Connected)
				if h.identity().ID == "" {
					t.Fatal("connected without enrolling")
				}
				return
			}
			testenv.Eventually(t, testTimeout, "two failed attempts", func() bool { return l.Stats().Reconnects >= 2 })
			if st := l.Stats(); st.Connected || !strings.Contains(st.LastError, tt.failure) {
				t.Fatalf("connected %v, last error %q; want refused with %q", st.Connected, st.LastError, tt.failure)
			}
			if h.identity().ID != "" {
				t.Fatal("enrolled with a service it should not trust")
			}
		})
	}
}

// TestLinkTLSBesideAuthenticatedSenders dials a TLS listener that also
// asks senders for client certificates: the device, which has none, is
// served all the same.
func TestLinkTLSBesideAuthenticatedSenders(t *testing.T) {
	pki := testenv.NewPKI(t)
	svc := testenv.Service(t, "", server.ServeConfig{TLSListen: "127.0.0.1:0",
		TLS: server.TLSFiles{Cert: pki.CertFile, Key: pki.KeyFile, ClientCA: pki.CAFile}})
	if svc.AuthURL() == "" {
		t.Fatal("no authenticated channels with a client CA")
	}
	tc, err := channel.LoadClientTLS(pki.CAFile, "")
	if err != nil {
		t.Fatal(err)
	}
	h := newMemHandler("tls")
	l := runLink(t, channel.Config{Service: "https://" + svc.TLSAddr().String(), Handler: h, TLS: tc})
	testenv.Eventually(t, testTimeout, "link up over TLS", l.Connected)
}

// TestRefusalTakenOnlyWhenProven shows when a device forgets its identity
// on a bare 4003 (an identity the service does not know): over verified
// TLS, or when told to trust the service (the embedded one); never over
// plain http.
func TestRefusalTakenOnlyWhenProven(t *testing.T) {
	pki := testenv.NewPKI(t)
	svc := testenv.Service(t, "", server.ServeConfig{TLSListen: "127.0.0.1:0", TLS: server.TLSFiles{Cert: pki.CertFile, Key: pki.KeyFile}})
	tc, err := channel.LoadClientTLS(pki.CAFile, "")
	if err != nil {
		t.Fatal(err)
	}
	ghost := channel.Identity{ID: "ghost", Secret: "not enrolled here"}
	tests := []struct {
		name   string
		cfg    channel.Config
		forget bool
	}{
		{"verified TLS", channel.Config{Service: "https://" + svc.TLSAddr().String(), TLS: tc}, true},
		{"plain http", channel.Config{Service: svc.URL()}, false},
		{"plain http, trusted", channel.Config{Service: svc.URL(), TrustRefusals: true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newMemHandler("refusal")
			h.id = ghost
			tt.cfg.Handler = h
			l := runLink(t, tt.cfg)
			if tt.forget {
				testenv.Eventually(t, testTimeout, "re-enrolled", func() bool { return l.Connected() && h.identity().ID != ghost.ID })
				return
			}
			testenv.Eventually(t, testTimeout, "three refusals", func() bool { return l.Stats().Reconnects >= 3 })
			if id := h.identity(); id != ghost {
				t.Fatalf("identity %+v after an unproven refusal; want %+v kept", id, ghost)
			}
			if st := l.Stats(); !strings.Contains(st.LastError, channel.ErrRefusalUnproven.Error()) {
				t.Fatalf("last error %q; want %q", st.LastError, channel.ErrRefusalUnproven)
			}
		})
	}
}

func TestParsePin(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	for _, p := range []string{
		hex.EncodeToString(sum[:]),
		strings.ToUpper(hex.EncodeToString(sum[:])),
		"sha256/" + base64.StdEncoding.EncodeToString(sum[:]),
		"sha256:" + base64.RawURLEncoding.EncodeToString(sum[:]),
	} {
		got, err := channel.ParsePin(p)
		if err != nil || string(got) != string(sum[:]) {
			t.Errorf("ParsePin(%q) = %x, %v", p, got, err)
		}
	}
	for _, p := range []string{"", "abc", strings.Repeat("0", 62), base64.StdEncoding.EncodeToString(sum[:16]), strings.Repeat("zz", 32)} {
		if _, err := channel.ParsePin(p); err == nil {
			t.Errorf("ParsePin(%q) accepted", p)
		}
	}
	if _, err := channel.ClientTLS([]byte("no PEM here"), ""); err == nil {
		t.Error("ClientTLS accepted a CA bundle without certificates")
	}
	if _, err := channel.LoadClientTLS(filepath.Join(t.TempDir(), "missing.pem"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadClientTLS of a missing file: %v", err)
	}
}

// TestWelcomeMustProveTheService runs the link against a service that
// does not know the device's key (one a DNS answer or a proxy put in the
// way): it answers the hello with a welcome that proves nothing, or with
// the real proof of another connection. The link never comes up, and the
// device keeps its identity.
func TestWelcomeMustProveTheService(t *testing.T) {
	id := channel.Identity{ID: "dev", Secret: "s3cret"}
	key := wire.DeviceKey(id.Secret)
	tests := []struct {
		name  string
		proof func(c *wire.Challenge, h *wire.Hello) string
	}{
		{"no proof", func(*wire.Challenge, *wire.Hello) string { return "" }},
		{"made up", func(*wire.Challenge, *wire.Hello) string { return wire.NewNonce() }},
		{"another connection's", func(c *wire.Challenge, h *wire.Hello) string {
			return wire.WelcomeProof(key, wire.NewNonce(), h.Nonce, id.ID)
		}},
		{"the hello's own proof sent back", func(c *wire.Challenge, h *wire.Hello) string { return h.Proof }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			hellos := 0
			up := websocket.Upgrader{}
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := up.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer ws.Close()
				c := wire.Challenge{Type: wire.TypeChallenge, Version: wire.Version, Nonce: wire.NewNonce()}
				b, _ := wire.Encode(c)
				ws.WriteMessage(websocket.TextMessage, b)
				ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				f, err := wire.DecodeDevice(data)
				h, ok := f.(*wire.Hello)
				if err != nil || !ok {
					return
				}
				mu.Lock()
				hellos++
				mu.Unlock()
				b, _ = wire.Encode(wire.Welcome{Type: wire.TypeWelcome, ID: h.ID, Proof: tt.proof(&c, h), MinHeartbeat: 60, MaxIdle: 3600})
				ws.WriteMessage(websocket.TextMessage, b)
				ws.ReadMessage() // until the device hangs up
			}))
			defer hs.Close()
			h := newMemHandler("fake")
			h.id = id
			l := runLink(t, channel.Config{Service: hs.URL, Handler: h})
			testenv.Eventually(t, testTimeout, "three welcomes", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return hellos >= 3 && l.Stats().Reconnects >= 3
			})
			if st := l.Stats(); st.Connected || !strings.Contains(st.LastError, channel.ErrServiceUnproven.Error()) {
				t.Fatalf("connected %v, last error %q; want the welcome refused", st.Connected, st.LastError)
			}
			if h.identity() != id {
				t.Fatalf("identity %+v, want %+v kept", h.identity(), id)
			}
		})
	}
}
