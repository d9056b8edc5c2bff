package ui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// The page's session. The UI has a key (Config.Key) that only the
// daemon's own user learns: from the address the daemon prints at start,
// from `herald ui-url` over the local API socket (which checks the
// caller's Unix user), or from the key file in the data directory. GET
// SessionPath with the key in KeyHeader sets a SameSite=Strict cookie
// signed with it and answers the token that goes with the cookie; with a
// valid cookie it answers the token again. Every other /api/ request
// needs the cookie, and every state-changing call also sends the
// token in TokenHeader. So another local user, who can reach a loopback
// port but not the key, gets nothing; and another web page can neither
// learn the token nor make the browser present a matching pair. A program
// (a scraper, curl) may send "Authorization: Bearer KEY" instead.
const (
	SessionPath = "/api/session"
	TokenHeader = "X-Herald-Token"
	KeyHeader   = "X-Herald-Key"
)

// KeyFragment starts the fragment of the page's address that carries the
// key: the browser never sends a fragment to the server or in a Referer,
// and the page takes it out of the address bar once read.
const KeyFragment = "#key="

// Codes in the JSON of the guard's refusals, so the page can tell a stale
// session (renew it, retry once) from anything else.
const (
	CodeMisdirected = "misdirected"
	CodeCrossSite   = "cross_site"
	CodeSession     = "session"
	CodeKey         = "key"
)

// A session cookie is a random nonce and its MAC under the key, so only
// this UI (or one started later with the same key) made it.
const (
	nonceBytes  = 16
	cookieBytes = nonceBytes + 16
	// cookieMaxAge keeps a session across browser restarts, so a bookmark
	// of the page (which has no key in it) keeps working for a while.
	cookieMaxAge = 30 * 24 * 60 * 60
)

// sessionCtx marks a request that carries a valid session (or the key), so
// the page is served with the phone's state inlined only then.
type sessionCtx struct{}

func hasSession(r *http.Request) bool {
	ok, _ := r.Context().Value(sessionCtx{}).(bool)
	return ok
}

// guard answers only for the host names the UI serves and only lets this
// page change anything. The Host check is what defeats DNS rebinding: a
// page of evil.example whose name was rebound to 127.0.0.1 is same-origin
// for the browser, but its requests say Host: evil.example.
type guard struct {
	names     map[string]bool // from Config.Hosts: "name" (any port) or "name:port"
	key       []byte          // Config.Key
	cookieKey []byte          // signs session cookies
	tokenKey  []byte          // makes a cookie's token
	next      http.Handler
}

func newGuard(hosts []string, key string, next http.Handler) *guard {
	g := &guard{names: map[string]bool{}, key: []byte(key), next: next}
	g.cookieKey = mac([]byte(key), "herald ui cookie")
	g.tokenKey = mac([]byte(key), "herald ui token")
	for _, h := range hosts {
		if h = normalHost(h); h != "" {
			g.names[h] = true
		}
	}
	return g
}

// normalHost lower-cases a configured host and drops a final dot and IPv6
// brackets, as splitHost does for a request's.
func normalHost(h string) string {
	name, port, ok := splitHost(h)
	if !ok {
		return ""
	}
	if port == "" {
		return name
	}
	return net.JoinHostPort(name, port)
}

// splitHost splits a Host header into a lower-case name and a port ("" when
// none was given).
func splitHost(h string) (name, port string, ok bool) {
	h = strings.ToLower(strings.TrimSpace(h))
	if h == "" {
		return "", "", false
	}
	name, port, err := net.SplitHostPort(h)
	if err != nil {
		name, port = h, ""
		if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
			name = name[1 : len(name)-1]
		}
	}
	name = strings.TrimSuffix(name, ".")
	return name, port, name != ""
}

// hostAllowed says whether r names this UI: the address the connection
// came in on, localhost or a loopback address with the UI's port, or a
// configured name.
func (g *guard) hostAllowed(r *http.Request) bool {
	name, port, ok := splitHost(r.Host)
	if !ok {
		return false
	}
	if port == "" {
		port = "80"
		if r.TLS != nil {
			port = "443"
		}
	}
	// A configured name may sit behind a proxy on another port.
	if g.names[name] || g.names[net.JoinHostPort(name, port)] {
		return true
	}
	ip := net.ParseIP(name)
	local, _ := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	if local != nil && port != strconv.Itoa(local.Port) {
		return false
	}
	if name == "localhost" || (ip != nil && ip.IsLoopback()) {
		return true
	}
	return ip != nil && local != nil && ip.Equal(local.IP)
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The page is never framed: its controls are not to be clicked through
	// another site's page.
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if !g.hostAllowed(r) {
		refuse(w, http.StatusMisdirectedRequest, CodeMisdirected,
			fmt.Sprintf("this UI does not serve host %q; open it by its listen address or localhost, or allow the name with --ui-host", r.Host))
		return
	}
	bearer := g.bearerValid(r)
	authed := bearer || sessionCookie(r, g.cookieKey) != ""
	if authed {
		r = r.WithContext(context.WithValue(r.Context(), sessionCtx{}, true))
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		// The page's files hold nothing of the phone's; the page itself
		// inlines the phone's state only for a session (handleIndex).
		// /metrics has figures of the phones, none of an app (no app ids,
		// URIs or contents), for a scraper that has no session.
		g.next.ServeHTTP(w, r)
		return
	}
	// Browsers say where a request comes from; a request of another site
	// (or another port of this host, which is the same site but not this
	// origin) gets nothing from the API, not even a read.
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		refuse(w, http.StatusForbidden, CodeCrossSite, "cross-site request refused")
		return
	}
	if r.URL.Path == SessionPath {
		g.session(w, r, bearer)
		return
	}
	if !authed {
		refuse(w, http.StatusUnauthorized, CodeSession, noSession)
		return
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		g.next.ServeHTTP(w, r)
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
		refuse(w, http.StatusForbidden, CodeCrossSite, "cross-origin request refused")
		return
	}
	// A browser cannot be made to send another site's Authorization
	// header, so the key itself needs no token beside it.
	if !bearer && !g.tokenValid(r) {
		refuse(w, http.StatusForbidden, CodeSession, "missing or stale session token: GET "+SessionPath+" and send its token in "+TokenHeader)
		return
	}
	g.next.ServeHTTP(w, r)
}

// noSession is the answer to a request without a session: what the user
// does about it.
const noSession = "no session: open the start screen at the address `herald ui-url` prints (it carries the page's key), " +
	"or send Authorization: Bearer KEY"

func mac(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// keyValid compares a presented key with the UI's in constant time.
func (g *guard) keyValid(k string) bool {
	return k != "" && subtle.ConstantTimeCompare([]byte(k), g.key) == 1
}

func (g *guard) bearerValid(r *http.Request) bool {
	k, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && g.keyValid(strings.TrimSpace(k))
}

// cookieName carries the UI's port: cookies are shared by every port of a
// host, and two UIs on one machine must not overwrite each other's.
func cookieName(r *http.Request) string {
	if local, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
		return "herald_ui_" + strconv.Itoa(local.Port)
	}
	return "herald_ui"
}

func (g *guard) token(cookie string) string {
	return base64.RawURLEncoding.EncodeToString(mac(g.tokenKey, cookie))
}

// newCookie is a fresh nonce with its MAC.
func (g *guard) newCookie() string {
	b := make([]byte, nonceBytes, cookieBytes)
	rand.Read(b)
	b = append(b, mac(g.cookieKey, string(b))[:cookieBytes-nonceBytes]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionCookie returns the request's session cookie if this UI's key
// signed it.
func sessionCookie(r *http.Request, cookieKey []byte) string {
	c, err := r.Cookie(cookieName(r))
	if err != nil {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) != cookieBytes {
		return ""
	}
	if !hmac.Equal(b[nonceBytes:], mac(cookieKey, string(b[:nonceBytes]))[:cookieBytes-nonceBytes]) {
		return ""
	}
	return c.Value
}

func (g *guard) tokenValid(r *http.Request) bool {
	c := sessionCookie(r, g.cookieKey)
	got := r.Header.Get(TokenHeader)
	if c == "" || got == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(g.token(c))) == 1
}

// session answers the token of the browser's session, starting one when
// the browser has none and shows the key. Tabs of one browser share the
// cookie, so a second tab keeps the first one's session rather than ending
// it.
func (g *guard) session(w http.ResponseWriter, r *http.Request, bearer bool) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		refuse(w, http.StatusMethodNotAllowed, "method", "GET only")
		return
	}
	c := sessionCookie(r, g.cookieKey)
	if c == "" {
		if !bearer && !g.keyValid(r.Header.Get(KeyHeader)) {
			refuse(w, http.StatusUnauthorized, CodeKey, "this page needs its key: open the address `herald ui-url` prints "+
				"(or the one the daemon printed when it started); the start screen acts for every app on the phone, so only the daemon's own user gets it")
			return
		}
		c = g.newCookie()
		http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: c, Path: "/", HttpOnly: true, MaxAge: cookieMaxAge,
			SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": g.token(c), "header": TokenHeader})
}

func refuse(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg, "code": code})
}
