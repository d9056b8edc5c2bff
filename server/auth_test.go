package server_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

func TestAuthenticatedSenders(t *testing.T) {
	e := startEnv(t, server.ServeConfig{})
	d := mustDial(t, e.svc.URL())
	ch := d.open("bank", "contoso")
	d.bind(ch.ChannelID, true, false)

	u, err := url.Parse(ch.URI)
	if err != nil || u.Scheme != "https" || u.Host != e.svc.TLSAddr().String() || !strings.HasPrefix(u.Path, server.UnthrottledPath) {
		t.Fatalf("authenticated channel URI %q is not https on %s%s", ch.URI, e.svc.TLSAddr(), server.UnthrottledPath)
	}

	// A certificate from a CA the service does not trust.
	stranger := newPKI(t)
	untrusted := stranger.client(t, "contoso")
	untrusted.Transport.(*http.Transport).TLSClientConfig.RootCAs = e.pki.pool

	tests := []struct {
		name   string
		client *http.Client
		code   int
		notif  string
	}{
		{"right CN", e.pki.client(t, "contoso"), 200, "Received"},
		{"no certificate", e.pki.client(t, ""), 401, ""},
		{"wrong CN", e.pki.client(t, "fabrikam"), 403, ""},
		{"CN differing only in case", e.pki.client(t, "Contoso"), 403, ""},
		{"untrusted CA", untrusted, 401, ""},
		{"server certificate as client certificate", serverCertClient(t, e), 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postMPNS(t, tt.client, http.MethodPost, ch.URI, mpnsHeaders("toast", "2", tt.name), toastXML)
			if r.network != nil || r.code != tt.code || r.header.Get("X-NotificationStatus") != tt.notif {
				t.Fatalf("got %d %q (%s) %v; want %d %q", r.code, r.header.Get("X-NotificationStatus"), r.body, r.network, tt.code, tt.notif)
			}
			if tt.code == 200 {
				if n := d.nextNotification(); n.MessageID != tt.name {
					t.Fatalf("device got %+v", n)
				}
			}
		})
	}

	// The same token on the throttled path is no channel at all.
	plain := e.svc.URL() + server.ThrottledPath + strings.TrimPrefix(u.Path, server.UnthrottledPath)
	if r := postRaw(t, plain); r.code != 404 {
		t.Fatalf("authenticated token on the throttled path: %d", r.code)
	}
	// And an unauthenticated channel is not reachable on the https path.
	open := d.open("news", "")
	tok := open.URI[strings.LastIndex(open.URI, "/")+1:]
	r := postMPNS(t, e.pki.client(t, "contoso"), http.MethodPost, e.svc.AuthURL()+server.UnthrottledPath+tok, rawHeaders(), "x")
	if r.code != 404 {
		t.Fatalf("unauthenticated token on the https path: %d (%s)", r.code, r.body)
	}
}

// serverCertClient presents the service's own server certificate, which
// the CA issued for server auth only.
func serverCertClient(t *testing.T, e *env) *http.Client {
	t.Helper()
	c := e.pki.client(t, "")
	cert, err := tls.LoadX509KeyPair(e.pki.certFile, e.pki.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{cert}
	return c
}

func TestServiceNameNeedsTLS(t *testing.T) {
	svc := startPlain(t, server.ServeConfig{})
	d := mustDial(t, svc.URL())
	if r := d.register("bank", "contoso", false); r.Code != wire.CodeBadRequest || r.URI != "" {
		t.Fatalf("service name on a service without TLS: %+v", r)
	}
}

func TestChannelURIs(t *testing.T) {
	e := startEnv(t, server.ServeConfig{})
	d := mustDial(t, e.svc.URL())
	seen := map[string]bool{}
	for _, app := range []string{"a", "b", "c"} {
		for _, svcName := range []string{"", "contoso"} {
			ch := d.open(app+svcName, svcName)
			renewed := d.register(app+svcName, svcName, true)
			for _, uri := range []string{ch.URI, renewed.URI} {
				if len(uri) > server.MaxURILength {
					t.Errorf("URI of %d characters", len(uri))
				}
				tok, err := base64.RawURLEncoding.DecodeString(uri[strings.LastIndex(uri, "/")+1:])
				if err != nil || len(tok)*8 < 128 {
					t.Errorf("URI %s: token of %d bits (%v)", uri, len(tok)*8, err)
				}
				if seen[uri] {
					t.Errorf("URI %s handed out twice", uri)
				}
				seen[uri] = true
			}
		}
	}

	// A public URL that would make URIs over 1,024 characters is refused.
	long := server.ServeConfig{PublicURL: "http://example.com/" + strings.Repeat("p", 1000)}
	if _, err := server.Start(t.Context(), withDB(t, long)); err == nil || !strings.Contains(err.Error(), "limit is 1024") {
		t.Fatalf("overlong public URL: %v", err)
	}
	plainAuth := server.ServeConfig{TLSListen: "127.0.0.1:0", AuthURL: "http://push.example.com",
		TLS: server.TLSFiles{Cert: e.pki.certFile, Key: e.pki.keyFile, ClientCA: e.pki.caFile}}
	if _, err := server.Start(t.Context(), withDB(t, plainAuth)); err == nil || !strings.Contains(err.Error(), "not https") {
		t.Fatalf("http base for authenticated URIs: %v", err)
	}
}

func TestEnrolmentCapPerAddress(t *testing.T) {
	var cfg server.ServeConfig
	cfg.Server.Limits = server.Limits{MaxDevicesPerSource: 2, LimitLoopback: true}
	svc := startPlain(t, cfg)
	first := mustDial(t, svc.URL())
	mustDial(t, svc.URL())

	_, err := dial(t, svc.URL(), "", "")
	var ce *websocket.CloseError
	if !asClose(err, &ce) || ce.Code != wire.CloseRetryLater || ce.Text != "3600" {
		t.Fatalf("third enrolment from one address: %v; want close %d \"3600\"", err, wire.CloseRetryLater)
	}
	// Devices already enrolled still connect.
	first.hangUp(svc)
	if _, err := dial(t, svc.URL(), first.id, first.secret); err != nil {
		t.Fatalf("enrolled device reconnecting: %v", err)
	}

	// Loopback is exempt unless told otherwise: the emulator's phones all
	// come from 127.0.0.1.
	exempt := startPlain(t, server.ServeConfig{Server: server.Config{Limits: server.Limits{MaxDevicesPerSource: 1}}})
	for range 3 {
		mustDial(t, exempt.URL())
	}
}

func TestMulticast(t *testing.T) {
	e := startEnv(t, server.ServeConfig{})
	d1, d2 := mustDial(t, e.svc.URL()), mustDial(t, e.svc.URL())
	a := d1.open("news", "")
	d1.bind(a.ChannelID, true, false)
	b := d2.open("news", "")
	d2.bind(b.ChannelID, true, false)
	unbound := d2.open("sport", "")
	auth := d1.open("bank", "contoso")
	d1.bind(auth.ChannelID, true, false)
	gone := e.svc.URL() + server.ThrottledPath + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

	body, _ := json.Marshal(server.MulticastRequest{Channels: []string{a.URI, b.URI, unbound.URI, gone, auth.URI, "::not a uri"}, Payload: toastXML})
	tests := []struct {
		name   string
		client *http.Client
		url    string
		want   []string // status and notification per channel
	}{
		{"plain", nil, e.svc.URL() + server.MulticastPath,
			[]string{"200 Received", "200 Received", "200 Suppressed", "404 Dropped", "401 ", "400 "}},
		{"with the service's certificate", e.pki.client(t, "contoso"), e.svc.AuthURL() + server.MulticastPath,
			[]string{"200 Received", "200 Received", "200 Suppressed", "404 Dropped", "200 Received", "400 "}},
		{"with another service's certificate", e.pki.client(t, "fabrikam"), e.svc.AuthURL() + server.MulticastPath,
			[]string{"200 Received", "200 Received", "200 Suppressed", "404 Dropped", "403 ", "400 "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postMPNS(t, tt.client, http.MethodPost, tt.url, mpnsHeaders("toast", "2", "mc-"+tt.name), string(body))
			if r.code != 200 || r.header.Get("X-MessageID") != "mc-"+tt.name {
				t.Fatalf("multicast: %d %v (%s) %v", r.code, r.header, r.body, r.network)
			}
			var res server.MulticastResponse
			if err := json.Unmarshal([]byte(r.body), &res); err != nil {
				t.Fatal(err)
			}
			if len(res.Results) != len(tt.want) {
				t.Fatalf("%d results for %d channels", len(res.Results), len(tt.want))
			}
			for i, got := range res.Results {
				if s := strings.TrimSpace(got.Notification); itoa(got.Status)+" "+s != tt.want[i] {
					t.Errorf("channel %d (%s): %d %q %s; want %s", i, got.Channel, got.Status, got.Notification, got.Error, tt.want[i])
				}
			}
			// The channels are delivered concurrently, so device 1's two
			// may come in either order.
			want1 := map[string]bool{a.ChannelID: true}
			if tt.want[4] == "200 Received" {
				want1[auth.ChannelID] = true
			}
			for range len(want1) {
				n := d1.nextNotification()
				if !want1[n.ChannelID] || n.MessageID != "mc-"+tt.name {
					t.Errorf("device 1 got %+v", n)
				}
				delete(want1, n.ChannelID)
			}
			if n := d2.nextNotification(); n.ChannelID != b.ChannelID {
				t.Errorf("device 2 got %+v", n)
			}
		})
	}

	// A bad payload fails the whole request, as it would every channel.
	bad, _ := json.Marshal(server.MulticastRequest{Channels: []string{a.URI}, Payload: "<wp:Notification"})
	if r := postMPNS(t, nil, http.MethodPost, e.svc.URL()+server.MulticastPath, mpnsHeaders("toast", "2", ""), string(bad)); r.code != 400 {
		t.Fatalf("multicast with a bad payload: %d", r.code)
	}
	if r := postMPNS(t, nil, http.MethodGet, e.svc.URL()+server.MulticastPath, nil, ""); r.code != 405 {
		t.Fatalf("GET multicast: %d", r.code)
	}
}

func TestDeviceSecretsStoredOnlyAsHashes(t *testing.T) {
	svc := startPlain(t, server.ServeConfig{})
	d := mustDial(t, svc.URL())
	if raw, err := base64.RawURLEncoding.DecodeString(d.secret); err != nil || len(raw)*8 < 128 {
		t.Fatalf("secret %q: %d bits (%v)", d.secret, len(raw)*8, err)
	}
	stored, err := svc.Store.Device(t.Context(), d.id)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(d.secret))
	if !bytes.Equal(stored.SecretHash, sum[:]) || bytes.Contains(stored.SecretHash, []byte(d.secret)) {
		t.Fatalf("stored %x for secret %q; want its SHA-256", stored.SecretHash, d.secret)
	}
}
