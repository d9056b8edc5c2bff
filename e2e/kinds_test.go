package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/ui"
)

// TestEveryKindThroughEveryLayer sends each kind mpns defines, and only
// those, through every layer: the sender (mpns.Client), the service's
// endpoint and its metrics, the wire protocol, the daemon's applier and its
// observer, and the UI's compose panel. Bindings and power suppress a kind
// exactly as its Spec says. A new kind is tested here without a line of
// this test changing.
func TestEveryKindThroughEveryLayer(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	changes := make(chan daemon.Change, 64)
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), OnChange: func(c daemon.Change) {
		select {
		case changes <- c:
		default:
		}
	}})
	ctx := ctxFor(t, 30*time.Second)
	yes := true
	bound, err := d.Client.Open(ctx, "bound", app.OpenRequest{Toast: &yes, Tile: &yes})
	if err != nil {
		t.Fatal(err)
	}
	unbound, err := d.Client.Open(ctx, "unbound", app.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// In the foreground the app is running, so every kind reaches it.
	if err := d.SetForeground(ctx, "bound"); err != nil {
		t.Fatal(err)
	}
	startScreen := ui.New(ui.Config{Phones: ui.Single{D: d.Daemon}, Logger: testenv.Logger(t)})
	page := httptest.NewServer(startScreen.Handler())
	defer page.Close()
	var sender mpns.Client

	send := func(t *testing.T, uri string, m mpns.Message) mpns.Result {
		t.Helper()
		res, err := sender.Send(ctx, uri, m, mpns.SendOptions{})
		if err != nil || res.Status != http.StatusOK {
			t.Fatalf("sending %s: %+v %v", m.Kind(), res, err)
		}
		return res
	}
	counted := func(kind mpns.Kind, status string) float64 {
		return testenv.Scrape(t, svc.URL()+server.MetricsPath).Value("herald_service_notifications_total",
			"kind", string(kind), "status", status, "code", "200")
	}

	for _, spec := range mpns.Kinds() {
		if !spec.MPNS() {
			continue // Web Push has its own tests
		}
		t.Run(string(spec.Kind), func(t *testing.T) {
			before := counted(spec.Kind, mpns.StatusReceived)
			res := send(t, bound.URI, spec.Sample())
			if !res.Received() {
				t.Fatalf("to a bound channel: %+v", res)
			}
			if got := counted(spec.Kind, mpns.StatusReceived); got != before+1 {
				t.Errorf("metrics counted %v received %s, want %v", got, spec.Kind, before+1)
			}
			for seen := false; !seen; {
				select {
				case c := <-changes:
					seen = c.Kind == string(spec.Kind) && c.App == "bound" && c.MessageID == res.MessageID
				case <-ctx.Done():
					t.Fatalf("the observer never heard of the %s", spec.Kind)
				}
			}

			res = send(t, unbound.URI, spec.Sample())
			if want := map[bool]string{true: mpns.StatusSuppressed, false: mpns.StatusReceived}[spec.NeedsBind]; res.Notification != want {
				t.Errorf("to an unbound channel: %s, want %s", res.Notification, want)
			}

			if err := d.SetPower(ctx, "low"); err != nil {
				t.Fatal(err)
			}
			res = send(t, bound.URI, spec.Sample())
			if want := map[bool]string{true: mpns.StatusSuppressed, false: mpns.StatusReceived}[spec.LowPowerSuppressed]; res.Notification != want {
				t.Errorf("at low power: %s, want %s", res.Notification, want)
			}
			if err := d.SetPower(ctx, "normal"); err != nil {
				t.Fatal(err)
			}

			// The compose panel builds the kind's request.
			body, _ := json.Marshal(ui.ComposeRequest{App: "bound", Kind: string(spec.Kind)})
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, page.URL+"/api/compose", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			client, token := uiSession(t, page.URL, startScreen.Key())
			req.Header.Set(ui.TokenHeader, token)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out ui.ComposeResult
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("compose: %d %v", resp.StatusCode, err)
			}
			class, target := out.RequestHeaders[http.CanonicalHeaderKey(mpns.HeaderNotificationClass)],
				out.RequestHeaders[http.CanonicalHeaderKey(mpns.HeaderTarget)]
			byClass, _, err := mpns.ParseClass(class)
			byTarget, ok := mpns.KindForTarget(target)
			if err != nil || byClass != spec.Kind || !ok || byTarget != spec.Kind {
				t.Errorf("compose sent class %q target %q for %s", class, target, spec.Kind)
			}
		})
	}
}

// uiSession starts a session with the start screen at base as its page
// does, and returns a client holding its cookie and the token to send.
func uiSession(t *testing.T, base, key string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	req, _ := http.NewRequest(http.MethodGet, base+ui.SessionPath, nil)
	req.Header.Set(ui.KeyHeader, key)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var session struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&session); err != nil || session.Token == "" {
		t.Fatalf("UI session: %d %v", resp.StatusCode, err)
	}
	return client, session.Token
}
