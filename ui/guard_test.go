package ui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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
	req, _ := http.NewRequest(http.MethodGet, base+ui.SessionPath, nil)
	req.Header.Set(ui.KeyHeader, keyFor(t, base))
	resp, err := c.Do(req)
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
		{name: "no token, no cookie", client: anon, hdr: map[string]string{"Origin": base}, onlyChanges: true, status: http.StatusUnauthorized, code: ui.CodeSession},
		{name: "wrong token", client: mine, hdr: map[string]string{ui.TokenHeader: strings.Repeat("A", len(token))}, onlyChanges: true, status: http.StatusForbidden, code: ui.CodeSession},
		{name: "token without its cookie", client: anon, hdr: map[string]string{ui.TokenHeader: token}, onlyChanges: true, status: http.StatusUnauthorized, code: ui.CodeSession},
		{name: "token of another page session", client: other, hdr: map[string]string{ui.TokenHeader: token}, onlyChanges: true, status: http.StatusForbidden, code: ui.CodeSession},
		{name: "forged cookie with its own token", client: anon, hdr: map[string]string{"Cookie": "herald_ui_" + port + "=" + strings.Repeat("A", 43), ui.TokenHeader: token},
			onlyChanges: true, status: http.StatusUnauthorized, code: ui.CodeSession},
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
		status, _ := do(t, http.DefaultClient, srv.URL, "GET", "/app.js", "", tt.host, nil)
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
	req, _ := http.NewRequest(http.MethodGet, e.url+ui.SessionPath, nil)
	req.Header.Set(ui.KeyHeader, e.ui.Key())
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sc := resp.Header.Get("Set-Cookie")
	for _, attr := range []string{"HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=2592000"} {
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

// TestGuardNoKey is another local user of the machine, who can reach the
// UI's loopback port but has not got its key (which only the daemon's user
// gets, from `herald ui-url` over the local API socket or the key file):
// it reads nothing of the phone's and changes nothing, whatever it
// presents, while the page opened with the key works, and a UI started
// again with the same key keeps its sessions.
func TestGuardNoKey(t *testing.T) {
	e := newEnv(t, 1)
	ch := e.open(t, "phone-0001", "demo")
	base := e.url
	anon := &http.Client{}
	other := ui.New(ui.Config{Phones: e.emu, Logger: testenv.Logger(t)})
	otherSrv := httptest.NewServer(other.Handler())
	t.Cleanup(otherSrv.Close)
	registerKey(t, otherSrv.URL, other.Key())
	otherClient, _ := newSession(t, otherSrv.URL)
	otherURL, _ := url.Parse(otherSrv.URL)
	otherCookies := otherClient.Jar.Cookies(otherURL)
	if len(otherCookies) != 1 {
		t.Fatalf("the other UI's session has cookies %v", otherCookies)
	}
	u, _ := url.Parse(base)
	stolen := "herald_ui_" + u.Port() + "=" + otherCookies[0].Value

	tried, refused := 0, map[int]int{}
	check := func(name string, c *http.Client, method, path, body string, hdr map[string]string, status int, code string) {
		t.Helper()
		tried++
		got, gotCode := do(t, c, base, method, path, body, "", hdr)
		if got != status || gotCode != code {
			t.Errorf("%s: %s %s: %d %q, want %d %q", name, method, path, got, gotCode, status, code)
			return
		}
		refused[got]++
	}
	for _, r := range uiRoutes {
		if !strings.HasPrefix(r.path, "/api/") || r.path == ui.SessionPath {
			continue
		}
		check("no session", anon, r.method, r.path, r.body, nil, http.StatusUnauthorized, ui.CodeSession)
		check("another UI's cookie", anon, r.method, r.path, r.body, map[string]string{"Cookie": stolen}, http.StatusUnauthorized, ui.CodeSession)
		check("wrong key as bearer", anon, r.method, r.path, r.body, map[string]string{"Authorization": "Bearer " + other.Key()}, http.StatusUnauthorized, ui.CodeSession)
	}
	for _, k := range []string{"", ui.NewKey(), other.Key(), e.ui.Key() + "A", e.ui.Key()[:20], strings.ToUpper(e.ui.Key()), " " + e.ui.Key() + "x"} {
		check(fmt.Sprintf("key %.12q", k), anon, "GET", ui.SessionPath, "", map[string]string{ui.KeyHeader: k}, http.StatusUnauthorized, ui.CodeKey)
	}
	check("key in the query", anon, "GET", ui.SessionPath+"?key="+e.ui.Key(), "", nil, http.StatusUnauthorized, ui.CodeKey)

	// The page without a session is its bare shell: no state inlined.
	resp, err := anon.Get(base + "/?phone=phone-0001")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(string(page), "initial-state\"") || strings.Contains(string(page), ch.URI) {
		t.Errorf("the page without a session: %d, inlines the state: %v", resp.StatusCode, strings.Contains(string(page), ch.URI))
	}

	st, err := e.ui.PhoneState(context.Background(), "phone-0001", e.emu.Phone("phone-0001"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Power != "normal" || st.Offline || st.Foreground != "" || len(st.Channels) != 1 || len(st.Toasts) != 0 {
		t.Fatalf("an attack acted: %+v", st)
	}

	// The page opened with the key: a session, then the state with the
	// URI, inlined in the page too.
	mine, token := newSession(t, base)
	resp, err = mine.Get(base + "/api/state?phone=phone-0001")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), ch.URI) {
		t.Fatalf("the page's state: %d %.200s", resp.StatusCode, b)
	}
	resp, err = mine.Get(base + "/?phone=phone-0001")
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), ch.URI) {
		t.Error("the page with a session does not inline the state")
	}
	// A program with the key as a bearer token.
	if status, _ := do(t, anon, base, "POST", "/api/power?phone=phone-0001", `{"level":"low"}`, "", map[string]string{"Authorization": "Bearer " + e.ui.Key()}); status != http.StatusOK {
		t.Errorf("bearer POST: %d", status)
	}
	// A UI started again with the same key (the key file) keeps the
	// session: its cookie and token still work.
	again := ui.New(ui.Config{Phones: e.emu, Logger: testenv.Logger(t), Key: e.ui.Key()})
	// Served in-process, on the same local address, as the restarted
	// process would be.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, base+"/api/power?phone=phone-0001", strings.NewReader(`{"level":"normal"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(ui.TokenHeader, token)
	for _, c := range mine.Jar.Cookies(u) {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: mustPort(t, u)}))
	again.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("the session at a UI started again with the same key: %d %s", rec.Code, rec.Body)
	}
	t.Logf("without the key: %d requests, answered %v; phone unchanged; with it: session, state with the URI, bearer change, and the session kept by a UI with the same key", tried, refused)
}

func mustPort(t *testing.T, u *url.URL) int {
	t.Helper()
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The key file is made once, mode 0600, read back the same, tightened if
// loose, and refused when it holds no key.
func TestLoadKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), ui.KeyFile)
	k1, err := ui.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", fi.Mode(), err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	k2, err := ui.LoadKey(path)
	if err != nil || k2 != k1 {
		t.Fatalf("read back %q %v, want %q", k2, err, k1)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("a loose key file stays %v", fi.Mode())
	}
	for _, bad := range []string{"", "short", "not base64 at all!!!!!!!!!!!!!!!"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ui.LoadKey(path); err == nil {
			t.Errorf("key file %q accepted", bad)
		}
	}
}
