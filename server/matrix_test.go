package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/heraldpush/herald/server"
)

// request is one POST a row of the matrix makes.
type request struct {
	client *http.Client
	method string
	uri    string
	header http.Header
	body   string
}

// TestResponseMatrix walks every row of MPNS's answer table
// (../shared/mpns.md §2) over real HTTP and TLS, each row against its own
// service, and checks the status, the three status headers (absent where
// MPNS sent none) and the X-MessageID echo.
func TestResponseMatrix(t *testing.T) {
	const msgID = "6f1d8a1e-3b2c-4d5e-8f90-123456789abc"
	toastH := func() http.Header { return mpnsHeaders("toast", "2", msgID) }
	rawH := func() http.Header { return mpnsHeaders("", "3", msgID) }

	tests := []struct {
		name            string
		cfg             func(*server.ServeConfig)
		setup           func(t *testing.T, e *env) request
		code            int
		notif, sub, dev string
		extra           map[string]string // further headers the answer must carry
	}{
		{
			name: "received, connected",
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("news", "")
				d.bind(ch.ChannelID, true, false)
				return request{uri: ch.URI, header: toastH(), body: toastXML}
			},
			code: 200, notif: "Received", sub: "Active", dev: "Connected",
		},
		{
			name: "received, temporarily disconnected",
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("news", "")
				d.hangUp(e.svc)
				return request{uri: ch.URI, header: rawH(), body: `{"sync":true}`}
			},
			code: 200, notif: "Received", sub: "Active", dev: "TempDisconnected",
		},
		{
			name: "queue full",
			cfg:  func(c *server.ServeConfig) { c.Server.QueueDepth = 2 },
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("news", "")
				d.hangUp(e.svc)
				mustPost(t, nil, ch.URI)
				mustPost(t, nil, ch.URI)
				return request{uri: ch.URI, header: rawH(), body: "x"}
			},
			code: 200, notif: "QueueFull", sub: "Active", dev: "TempDisconnected",
		},
		{
			name: "suppressed: toast not bound",
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("news", "")
				return request{uri: ch.URI, header: toastH(), body: toastXML}
			},
			code: 200, notif: "Suppressed", sub: "Active", dev: "Connected",
		},
		{
			name: "400: malformed XML",
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("news", "")
				return request{uri: ch.URI, header: toastH(), body: "<wp:Notification"}
			},
			code: 400,
		},
		{
			name: "400: class of another family",
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("news", "")
				return request{uri: ch.URI, header: mpnsHeaders("toast", "1", msgID), body: toastXML}
			},
			code: 400,
		},
		{
			name: "401: authenticated channel over plain HTTP",
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("bank", "contoso")
				plain := e.svc.URL() + ch.URI[strings.Index(ch.URI, server.UnthrottledPath):]
				return request{uri: plain, header: rawH(), body: "x"}
			},
			code: 401,
		},
		{
			name: "401: authenticated channel, no client certificate",
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("bank", "contoso")
				return request{client: e.pki.client(t, ""), uri: ch.URI, header: rawH(), body: "x"}
			},
			code: 401,
		},
		{
			name: "403: client certificate for another service",
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("bank", "contoso")
				return request{client: e.pki.client(t, "fabrikam"), uri: ch.URI, header: rawH(), body: "x"}
			},
			code: 403,
		},
		{
			name: "received: authenticated sender past the daily quota",
			cfg:  func(c *server.ServeConfig) { c.Server.Limits.DailyQuota = 1 },
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("bank", "contoso")
				c := e.pki.client(t, "contoso")
				mustPost(t, c, ch.URI)
				mustPost(t, c, ch.URI)
				return request{client: c, uri: ch.URI, header: rawH(), body: "x"}
			},
			code: 200, notif: "Received", sub: "Active", dev: "Connected",
		},
		{
			name: "404: unknown channel",
			setup: func(t *testing.T, e *env) request {
				return request{uri: e.svc.URL() + server.ThrottledPath + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", header: rawH(), body: "x"}
			},
			code: 404, notif: "Dropped", sub: "Expired", dev: "Disconnected",
		},
		{
			name: "404: URI replaced by a renewal",
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				old := d.open("news", "")
				renewed := d.register("news", "", true)
				if renewed.URI == old.URI || renewed.ChannelID != old.ChannelID {
					t.Fatalf("renewal gave %+v after %+v", renewed, old)
				}
				mustPost(t, nil, renewed.URI)
				return request{uri: old.URI, header: rawH(), body: "x"}
			},
			code: 404, notif: "Dropped", sub: "Expired", dev: "Disconnected",
		},
		{
			name: "405: GET",
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("news", "")
				return request{method: http.MethodGet, uri: ch.URI, header: rawH()}
			},
			code: 405, extra: map[string]string{"Allow": "POST"},
		},
		{
			name: "406: daily quota used up",
			cfg:  func(c *server.ServeConfig) { c.Server.Limits.DailyQuota = 2 },
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("news", "")
				mustPost(t, nil, ch.URI)
				mustPost(t, nil, ch.URI)
				return request{uri: ch.URI, header: rawH(), body: "x"}
			},
			code: 406, notif: "Dropped", sub: "Active", dev: "Connected",
		},
		{
			name: "406: per-second rate",
			cfg: func(c *server.ServeConfig) {
				c.Server.Limits.ChannelRate, c.Server.Limits.ChannelBurst = 1, 1
			},
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("news", "")
				mustPost(t, nil, ch.URI)
				return request{uri: ch.URI, header: rawH(), body: "x"}
			},
			code: 406, notif: "Dropped", sub: "Active", dev: "Connected",
		},
		{
			name: "412: device inactive",
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("news", "")
				d.hangUp(e.svc)
				e.clock.Advance(server.DefaultInactiveAfter + 1)
				return request{uri: ch.URI, header: rawH(), body: "x"}
			},
			code: 412, notif: "Dropped", dev: "InActive",
		},
		{
			name: "503: store unavailable",
			setup: func(t *testing.T, e *env) request {
				d := mustDial(t, e.svc.URL())
				ch := d.open("news", "")
				e.svc.Store.Close()
				return request{uri: ch.URI, header: rawH(), body: "x"}
			},
			code: 503, extra: map[string]string{"Retry-After": "60"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg server.ServeConfig
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			e := startEnv(t, cfg)
			req := tt.setup(t, e)
			if req.method == "" {
				req.method = http.MethodPost
			}
			r := postMPNS(t, req.client, req.method, req.uri, req.header, req.body)
			if r.network != nil {
				t.Fatalf("request failed: %v", r.network)
			}
			got := []string{r.header.Get("X-NotificationStatus"), r.header.Get("X-SubscriptionStatus"), r.header.Get("X-DeviceConnectionStatus")}
			want := []string{tt.notif, tt.sub, tt.dev}
			if r.code != tt.code || strings.Join(got, "/") != strings.Join(want, "/") {
				t.Errorf("got %d %q; want %d %q (body %q)", r.code, got, tt.code, want, r.body)
			}
			if id := r.header.Get("X-MessageID"); id != req.header.Get("X-MessageID") {
				t.Errorf("X-MessageID echoed as %q, sent %q", id, req.header.Get("X-MessageID"))
			}
			for k, v := range tt.extra {
				if r.header.Get(k) != v {
					t.Errorf("%s: %q, want %q", k, r.header.Get(k), v)
				}
			}
		})
	}
}
