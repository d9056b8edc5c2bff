package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/ui"
)

// pages holds a session per UI base URL, as the page in a browser holds
// its cookie and token.
var pages sync.Map // base URL → *page

type page struct {
	client *http.Client
	token  string
}

// pageFor starts a session with the UI at base, as the page does on load.
func pageFor(t *testing.T, base string) *page {
	t.Helper()
	if p, ok := pages.Load(base); ok {
		return p.(*page)
	}
	jar, _ := cookiejar.New(nil)
	p := &page{client: &http.Client{Jar: jar}}
	req, _ := http.NewRequest(http.MethodGet, base+ui.SessionPath, nil)
	req.Header.Set(ui.KeyHeader, keyFor(t, base))
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Token == "" {
		t.Fatalf("session: %d %v", resp.StatusCode, err)
	}
	p.token = out.Token
	pages.Store(base, p)
	return p
}

// post sends a change as the page does: JSON, with its session's cookie
// and token.
func post(t *testing.T, rawURL, body string) (int, map[string]any) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p := pageFor(t, u.Scheme+"://"+u.Host)
	req, _ := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(ui.TokenHeader, p.token)
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: not JSON: %s", rawURL, b)
	}
	return resp.StatusCode, out
}

// The compose panel's proxy answers what the MPNS endpoint answered, for
// each power level and connectivity, and refuses bad input clearly.
func TestComposeAndControls(t *testing.T) {
	e := newEnv(t, 1)
	e.open(t, "phone-0001", "demo")
	api := e.url + "/api/"
	q := "?phone=phone-0001"
	steps := []struct {
		name       string
		path, body string
		status     int
		// For compose: the MPNS status headers expected back.
		notification, device string
		errContains          string
		// eventually: the phone's link changes asynchronously, so the
		// step is repeated until the service sees it.
		eventually bool
	}{
		{name: "toast", path: "compose", body: `{"app":"demo","kind":"toast","text1":"Hi"}`, status: 200, notification: "Received", device: "Connected"},
		{name: "tile", path: "compose", body: `{"app":"demo","kind":"tile","template":"IconicTile","fields":{"Count":"4","Title":"Mail"}}`, status: 200, notification: "Received", device: "Connected"},
		{name: "raw", path: "compose", body: `{"app":"demo","kind":"raw","body":"{\"sync\":true}","delay":450}`, status: 200, notification: "Received", device: "Connected"},
		{name: "power low", path: "power", body: `{"level":"low"}`, status: 200},
		{name: "toast at low power", path: "compose", body: `{"app":"demo","kind":"toast","text1":"Hi"}`, status: 200, notification: "Suppressed"},
		{name: "raw at low power", path: "compose", body: `{"app":"demo","kind":"raw","body":"x"}`, status: 200, notification: "Received"},
		{name: "power critical", path: "power", body: `{"level":"critical"}`, status: 200},
		{name: "raw at critical power", path: "compose", body: `{"app":"demo","kind":"raw","body":"x"}`, status: 200, notification: "Suppressed"},
		{name: "power normal", path: "power", body: `{"level":"normal"}`, status: 200},
		{name: "drop the link", path: "connectivity", body: `{"online":false}`, status: 200},
		{name: "toast while away", path: "compose", body: `{"app":"demo","kind":"toast","text1":"later"}`, status: 200, notification: "Received", device: "TempDisconnected", eventually: true},
		{name: "bring it back", path: "connectivity", body: `{"online":true}`, status: 200},
		{name: "toast after coming back", path: "compose", body: `{"app":"demo","kind":"toast","text1":"now"}`, status: 200, notification: "Received", device: "Connected", eventually: true},
		{name: "open an app from the page", path: "open", body: `{"app":"second","toast":true,"tile":true,"domains":["http://img.example.com"]}`, status: 200},
		{name: "compose to it", path: "compose", body: `{"app":"second","kind":"toast","text1":"Hi"}`, status: 200, notification: "Received", device: "Connected"},
		{name: "pin a secondary tile", path: "pin", body: `{"app":"second","tile_id":"/Sec.xaml?id=1"}`, status: 200},
		{name: "open a bad app name", path: "open", body: `{"app":"a/b"}`, status: 400, errContains: "app id"},
		{name: "pin without a channel", path: "pin", body: `{"app":"nope","tile_id":"/x"}`, status: 404},
		{name: "bad power", path: "power", body: `{"level":"max"}`, status: 400, errContains: "max"},
		{name: "bad kind", path: "compose", body: `{"app":"demo","kind":"badge"}`, status: 400, errContains: "toast, tile or raw"},
		{name: "bad delay", path: "compose", body: `{"app":"demo","kind":"toast","delay":5}`, status: 400, errContains: "450"},
		{name: "no channel", path: "compose", body: `{"app":"nope","kind":"toast"}`, status: 404, errContains: "no channel"},
		{name: "unknown field", path: "compose", body: `{"app":"demo","uri":"http://example.com"}`, status: 400, errContains: "unknown field"},
		{name: "foreground bad app", path: "foreground", body: `{"app":"a b"}`, status: 400},
	}
	for _, s := range steps {
		check := func() (bool, string) {
			status, out := post(t, api+s.path+q, s.body)
			if status != s.status {
				return false, fmt.Sprintf("status %d, want %d: %v", status, s.status, out)
			}
			if s.errContains != "" && !strings.Contains(fmt.Sprint(out["error"]), s.errContains) {
				return false, fmt.Sprintf("error %q lacks %q", out["error"], s.errContains)
			}
			if s.notification == "" {
				return true, ""
			}
			h, _ := out["headers"].(map[string]any)
			if out["status"] != float64(200) || h["X-Notificationstatus"] != s.notification || (s.device != "" && h["X-Deviceconnectionstatus"] != s.device) {
				return false, fmt.Sprintf("got %v", out)
			}
			return true, ""
		}
		if s.eventually {
			testenv.Eventually(t, 10*time.Second, s.name, func() bool { ok, _ := check(); return ok })
		} else if ok, msg := check(); !ok {
			t.Fatalf("%s: %s", s.name, msg)
		}
	}
	// Phones are named by ?phone= or ?device= (the CLI's word); an
	// unknown one is the local API's 404 NotFound.
	for _, tt := range []struct {
		name, query string
		status      int
		code        string
	}{
		{"device", "?device=phone-0001", http.StatusOK, ""},
		{"both agreeing", "?phone=phone-0001&device=phone-0001", http.StatusOK, ""},
		{"both disagreeing", "?phone=phone-0001&device=phone-0002", http.StatusBadRequest, app.CodeBadRequest},
		{"unknown phone", "?phone=phone-9", http.StatusNotFound, app.CodeNotFound},
		{"unknown device", "?device=phone-9", http.StatusNotFound, app.CodeNotFound},
	} {
		status, out := post(t, api+"power"+tt.query, `{"level":"normal"}`)
		if status != tt.status || (tt.code != "" && (out["code"] != tt.code || out["message"] == "")) {
			t.Errorf("%s: %d %v, want %d %s", tt.name, status, out, tt.status, tt.code)
		}
	}
	// What another web page could make the developer's browser send.
	for _, tt := range []struct {
		name, contentType, origin string
		status                    int
	}{
		{"form post", "text/plain", "", http.StatusUnsupportedMediaType},
		{"other origin", "application/json", "http://evil.example", http.StatusForbidden},
		{"same origin", "application/json", e.url, http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodPost, api+"power"+q, strings.NewReader(`{"level":"normal"}`))
		req.Header.Set("Content-Type", tt.contentType)
		if tt.origin != "" {
			req.Header.Set("Origin", tt.origin)
		}
		p := pageFor(t, e.url)
		req.Header.Set(ui.TokenHeader, p.token)
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %d, want %d", tt.name, resp.StatusCode, tt.status)
		}
	}

	// The state the page reads, once the raw notifications have arrived.
	var st ui.State
	testenv.Eventually(t, 10*time.Second, "two raw notifications in the log", func() bool {
		resp, err := pageFor(t, e.url).client.Get(api + "state" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		st = ui.State{}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return len(st.Raw["demo"]) == 2
	})
	if len(st.Tiles) != 1 || st.Tiles[0].Template != mpns.TemplateIconic || st.Tiles[0].Fields["Count"] != "4" {
		t.Fatalf("tiles %+v", st.Tiles)
	}
	if len(st.Channels) != 2 || st.Channels[1].App != "second" || len(st.Channels[1].Pinned) != 1 || st.Power != "normal" || st.Offline {
		t.Fatalf("state %+v", st)
	}
	// Raw reached no running app, so the log says dropped.
	if raw := st.Raw["demo"]; raw[0].Delivered || raw[0].Body != `{"sync":true}` {
		t.Fatalf("raw log %+v", st.Raw)
	}
}

// With the app in the foreground (as the page's control puts it), a raw
// notification is delivered and a toast goes to the app, not the shell.
func TestForegroundApp(t *testing.T) {
	e := newEnv(t, 1)
	ch := e.open(t, "phone-0001", "demo")
	if status, out := post(t, e.url+"/api/foreground?phone=phone-0001", `{"app":"demo"}`); status != 200 {
		t.Fatalf("foreground: %d %v", status, out)
	}
	send(t, ch.URI, mpns.KindRaw, []byte("ping"))
	send(t, ch.URI, mpns.KindToast, (&mpns.Toast{Text1: "in app"}).XML())
	d := e.emu.Phone("phone-0001")
	testenv.Eventually(t, 10*time.Second, "the toast taken by the app", func() bool {
		toasts, err := d.Toasts(context.Background(), "", 0)
		return err == nil && len(toasts) == 1 && toasts[0].ShownBy == "app" && toasts[0].ID > 0 // the page orders banners by id
	})
	var st ui.State
	testenv.Eventually(t, 10*time.Second, "the raw notification logged", func() bool {
		var err error
		st, err = e.ui.PhoneState(context.Background(), "phone-0001", d)
		return err == nil && len(st.Raw["demo"]) == 1
	})
	if st.Foreground != "demo" || len(st.Raw["demo"]) != 1 || !st.Raw["demo"][0].Delivered || st.Raw["demo"][0].Body != "ping" {
		t.Fatalf("state %+v", st)
	}
	// The page plays the app and takes its events (right after each
	// commit), so none pile up.
	testenv.Eventually(t, 10*time.Second, "the app's events taken", func() bool {
		evs, err := d.PendingEvents(context.Background(), "demo", 10)
		return err == nil && len(evs) == 0
	})
	if status, _ := post(t, e.url+"/api/foreground?phone=phone-0001", `{"app":""}`); status != 200 {
		t.Fatal("back to the start screen failed")
	}
	if st, err := d.Status(context.Background()); err != nil || len(st.Running) != 0 {
		t.Fatalf("still running: %v %v", st.Running, err)
	}
}

// `herald run --ui` shows its one phone, named "".
func TestSinglePhone(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	page := &ui.Single{}
	u := ui.New(ui.Config{Phones: page, Logger: testenv.Logger(t)})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), OnChange: func(c daemon.Change) { u.Notify("", c) }})
	page.D = d.Daemon
	srv := httptest.NewServer(u.Handler())
	t.Cleanup(srv.Close)
	registerKey(t, srv.URL, u.Key())
	yes := true
	if _, err := d.Client.Open(context.Background(), "demo", app.OpenRequest{Tile: &yes}); err != nil {
		t.Fatal(err)
	}
	status, out := post(t, srv.URL+"/api/compose?phone=", `{"app":"demo","kind":"tile","fields":{"Title":"Solo"}}`)
	if h, _ := out["headers"].(map[string]any); status != 200 || h["X-Notificationstatus"] != "Received" {
		t.Fatalf("compose: %d %v", status, out)
	}
	testenv.Eventually(t, 10*time.Second, "the tile in the state", func() bool {
		resp, err := pageFor(t, srv.URL).client.Get(srv.URL + "/api/state")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st ui.State
		json.NewDecoder(resp.Body).Decode(&st)
		return len(st.Tiles) == 1 && st.Tiles[0].Fields["Title"] == "Solo"
	})
	if status, _ := post(t, srv.URL+"/api/power?phone=phone-0001", `{"level":"low"}`); status != http.StatusNotFound {
		t.Fatalf("a named phone on a single-phone page: %d", status)
	}
}
