package ui_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/ui"
)

// The UI's routes, each with a body that would change the phone if it
// were obeyed.
var uiRoutes = []struct {
	method, path, body string
}{
	{"GET", "/", ""},
	{"GET", "/app.js", ""},
	{"GET", ui.MetricsPath, ""},
	{"GET", ui.SessionPath, ""},
	{"GET", "/api/phones", ""},
	{"GET", "/api/state?phone=phone-0001", ""},
	{"GET", "/api/events?phone=phone-0001", ""},
	{"POST", "/api/power?phone=phone-0001", `{"level":"critical"}`},
	{"POST", "/api/connectivity?phone=phone-0001", `{"online":false}`},
	{"POST", "/api/foreground?phone=phone-0001", `{"app":"demo"}`},
	{"POST", "/api/open?phone=phone-0001", `{"app":"evil","toast":true}`},
	{"POST", "/api/pin?phone=phone-0001", `{"app":"demo","tile_id":"/Evil.xaml"}`},
	{"POST", "/api/compose?phone=phone-0001", `{"app":"demo","kind":"toast","text1":"pwned"}`},
}

// do sends one request to the UI at base with the given Host, headers and
// client, and returns the status and the refusal's code if any. An event
// stream that was let through is closed at once.
func do(t *testing.T, c *http.Client, base, method, path, body, host string, hdr map[string]string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp.StatusCode, ""
	}
	var out struct{ Code string }
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return resp.StatusCode, out.Code
}

// newSession starts a page session with its own cookie jar.
func newSession(t *testing.T, base string) (*http.Client, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(base + ui.SessionPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		t.Fatalf("session: %d %v", resp.StatusCode, err)
	}
	return c, out.Token
}

// TestGuardAttacks is DNS rebinding and cross-site requests against every
// route: a page of another site, whether its name points at 127.0.0.1 or
// not, can neither read the phone's state nor change it. Afterwards the
// phone is as it was, and the page's own session still works.
func TestGuardAttacks(t *testing.T) {
	e := newEnv(t, 1)
	e.open(t, "phone-0001", "demo")
	base := e.url
	u, _ := url.Parse(base)
	port := u.Port()
	mine, token := newSession(t, base)
	other, otherToken := newSession(t, base)
	if token == otherToken {
		t.Fatal("two sessions got one token")
	}
	anon := &http.Client{}

	attacks := []struct {
		name   string
		client *http.Client
		host   string
		hdr    map[string]string
		// onlyChanges: the attack is one on changes (reads of this
		// origin are not refused by it).
		onlyChanges bool
		onlyAPI     bool
		status      int
		code        string
	}{
		{name: "rebound name with port", client: mine, host: "evil.example:" + port, hdr: map[string]string{"Origin": "http://evil.example:" + port, ui.TokenHeader: token},
			status: http.StatusMisdirectedRequest, code: ui.CodeMisdirected},
		{name: "rebound name without port", client: anon, host: "evil.example", status: http.StatusMisdirectedRequest, code: ui.CodeMisdirected},
		{name: "name under localhost's", client: anon, host: "localhost.evil.example:" + port, status: http.StatusMisdirectedRequest, code: ui.CodeMisdirected},
		{name: "loopback on another port", client: anon, host: "127.0.0.1:1", status: http.StatusMisdirectedRequest, code: ui.CodeMisdirected},
		{name: "empty-looking host", client: anon, host: ":" + port, status: http.StatusMisdirectedRequest, code: ui.CodeMisdirected},
		{name: "forged origin with the token", client: mine, hdr: map[string]string{"Origin": "http://evil.example", ui.TokenHeader: token},
			onlyChanges: true, status: http.StatusForbidden, code: ui.CodeCrossSite},
		{name: "other port of this host as origin", client: mine, hdr: map[string]string{"Origin": "http://127.0.0.1:1", ui.TokenHeader: token},
			onlyChanges: true, status: http.StatusForbidden, code: ui.CodeCrossSite},
		{name: "browser says cross-site", client: mine, hdr: map[string]string{"Sec-Fetch-Site": "cross-site", ui.TokenHeader: token},
			onlyAPI: true, status: http.StatusForbidden, code: ui.CodeCrossSite},
		{name: "browser says same-site (another port)", client: mine, hdr: map[string]string{"Sec-Fetch-Site": "same-site", ui.TokenHeader: token},
			onlyAPI: true, status: http.StatusForbidden, code: ui.CodeCrossSite},
		{name: "no token, session cookie", client: mine, onlyChanges: true, status: http.StatusForbidden, code: ui.CodeSession},
		{name: "no token, no cookie", client: anon, hdr: map[string]string{"Origin": base}, onlyChanges: true, status: http.StatusForbidden, code: ui.CodeSession},
		{name: "wrong token", client: mine, hdr: map[string]string{ui.TokenHeader: strings.Repeat("A", len(token))}, onlyChanges: true, status: http.StatusForbidden, code: ui.CodeSession},
		{name: "token without its cookie", client: anon, hdr: map[string]string{ui.TokenHeader: token}, onlyChanges: true, status: http.StatusForbidden, code: ui.CodeSession},
		{name: "token of another page session", client: other, hdr: map[string]string{ui.TokenHeader: token}, onlyChanges: true, status: http.StatusForbidden, code: ui.CodeSession},
		{name: "forged cookie with its own token", client: anon, hdr: map[string]string{"Cookie": "herald_ui_" + port + "=" + strings.Repeat("A", 43), ui.TokenHeader: token},
			onlyChanges: true, status: http.StatusForbidden, code: ui.CodeSession},
	}
	tried, answered := 0, map[int]int{}
	for _, a := range attacks {
		for _, r := range uiRoutes {
			change := r.method != http.MethodGet
			if (a.onlyChanges && !change) || (a.onlyAPI && !strings.HasPrefix(r.path, "/api/")) {
				continue
			}
			tried++
			t.Run(a.name+" "+r.method+" "+r.path, func(t *testing.T) {
				status, code := do(t, a.client, base, r.method, r.path, r.body, a.host, a.hdr)
				if status != a.status || code != a.code {
					t.Fatalf("%d %q, want %d %q", status, code, a.status, a.code)
				}
				answered[status]++
			})
		}
	}

	// Nothing the attacks sent was obeyed.
	d := e.emu.Phone("phone-0001")
	ctx := context.Background()
	st, err := e.ui.PhoneState(ctx, "phone-0001", d)
	if err != nil {
		t.Fatal(err)
	}
	if st.Power != "normal" || st.Offline || st.Foreground != "" || len(st.Channels) != 1 || len(st.Channels[0].Pinned) != 0 || len(st.Toasts) != 0 {
		t.Fatalf("an attack acted: power %s offline %v foreground %q channels %+v toasts %+v", st.Power, st.Offline, st.Foreground, st.Channels, st.Toasts)
	}

	// The page itself, by every name it is served under (each its own
	// origin, with its own session, as in a browser), keeps working.
	served := 0
	for _, pageURL := range []string{base, "http://localhost:" + port} {
		c, tok := newSession(t, pageURL)
		for _, r := range uiRoutes {
			hdr := map[string]string{ui.TokenHeader: tok, "Sec-Fetch-Site": "same-origin"}
			if r.method != http.MethodGet {
				hdr["Origin"] = pageURL
			}
			if r.path == "/api/power?phone=phone-0001" {
				r.body = `{"level":"normal"}`
			}
			if r.path == "/api/connectivity?phone=phone-0001" {
				r.body = `{"online":true}`
			}
			if status, code := do(t, c, pageURL, r.method, r.path, r.body, "", hdr); status != http.StatusOK {
				t.Errorf("page at %s: %s %s: %d %q", pageURL, r.method, r.path, status, code)
			} else {
				served++
			}
		}
	}
	t.Logf("rebinding, forged Origin, cross-site and session attacks: %d requests, answered %v, phone unchanged; the page's own sessions: %d requests, %d answered 200",
		tried, answered, 2*len(uiRoutes), served)
}

// A name given with --ui-host is served (on any port, for a proxy in front,
// or on the one given); others stay refused. IPv6 loopback works too.
func TestGuardHosts(t *testing.T) {
	e := newEnv(t, 1)
	page := ui.New(ui.Config{Phones: e.emu, Logger: testenv.Logger(t), Hosts: []string{"Herald.Test", "box.lan:8080"}})
	srv := httptest.NewServer(page.Handler())
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	port := u.Port()
	for _, tt := range []struct {
		host   string
		status int
	}{
		{"herald.test", 200},
		{"herald.test:" + port, 200},
		{"HERALD.TEST:9999", 200},
		{"box.lan:8080", 200},
		{"box.lan:" + port, 421},
		{"box.lan", 421},
		{"[::1]:" + port, 200},
		{"LOCALHOST.:" + port, 200},
		{"127.0.0.1:" + port, 200},
		{"127.0.0.1", 421},
		{"[::1]:1", 421},
		{"evil.herald.test", 421},
		{"herald.test.evil.example", 421},
	} {
		status, _ := do(t, http.DefaultClient, srv.URL, "GET", "/api/phones", "", tt.host, nil)
		if status != tt.status {
			t.Errorf("Host %q: %d, want %d", tt.host, status, tt.status)
		}
	}
	for _, bad := range []string{"", "http://herald.test", "a/b", "x:0", "x:70000", "a b"} {
		if platform.ValidUIHost(bad) == nil {
			t.Errorf("ValidUIHost(%q) accepted", bad)
		}
	}
	for _, good := range []string{"herald.test", "box.lan:8080", "192.168.1.5", "[::1]:8791"} {
		if err := platform.ValidUIHost(good); err != nil {
			t.Errorf("ValidUIHost(%q): %v", good, err)
		}
	}
}

// Two tabs of one browser share a session (the second does not end the
// first), and the session cookie is SameSite=Strict and HttpOnly.
func TestGuardSession(t *testing.T) {
	e := newEnv(t, 1)
	c, token := newSession(t, e.url)
	resp, err := c.Get(e.url + ui.SessionPath)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Token string }
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if out.Token != token || resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("second tab: token %q (first %q), Set-Cookie %q", out.Token, token, resp.Header.Get("Set-Cookie"))
	}
	resp, err = http.Get(e.url + ui.SessionPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/"} {
		if !strings.Contains(sc, attr) {
			t.Errorf("Set-Cookie %q lacks %s", sc, attr)
		}
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("X-Frame-Options %q", resp.Header.Get("X-Frame-Options"))
	}
	if status, code := do(t, c, e.url, "POST", ui.SessionPath, "{}", "", nil); status != http.StatusMethodNotAllowed {
		t.Errorf("POST session: %d %q", status, code)
	}
}
