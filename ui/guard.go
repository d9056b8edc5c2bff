package ui

import (
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

// The page's session: GET SessionPath sets a SameSite=Strict cookie and
// answers the token that goes with it; every state-changing call sends the
// token in TokenHeader. Only a page of this origin can read the answer, and
// only a request of this site carries the cookie, so another web page can
// neither learn the token nor make the browser present a matching pair.
const (
	SessionPath = "/api/session"
	TokenHeader = "X-Herald-Token"
)

// Codes in the JSON of the guard's refusals, so the page can tell a stale
// session (renew it, retry once) from anything else.
const (
	CodeMisdirected = "misdirected"
	CodeCrossSite   = "cross_site"
	CodeSession     = "session"
)

// cookieBytes is the session cookie's random length.
const cookieBytes = 32

// guard answers only for the host names the UI serves and only lets this
// page change anything. The Host check is what defeats DNS rebinding: a
// page of evil.example whose name was rebound to 127.0.0.1 is same-origin
// for the browser, but its requests say Host: evil.example.
type guard struct {
	names map[string]bool // from Config.Hosts: "name" (any port) or "name:port"
	key   []byte          // the session tokens' HMAC key, new for each UI
	next  http.Handler
}

func newGuard(hosts []string, next http.Handler) *guard {
	g := &guard{names: map[string]bool{}, key: make([]byte, 32), next: next}
	rand.Read(g.key)
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
	if !strings.HasPrefix(r.URL.Path, "/api/") {
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
		g.session(w, r)
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
	if !g.tokenValid(r) {
		refuse(w, http.StatusForbidden, CodeSession, "missing or stale session token: GET "+SessionPath+" and send its token in "+TokenHeader)
		return
	}
	g.next.ServeHTTP(w, r)
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
	m := hmac.New(sha256.New, g.key)
	m.Write([]byte(cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sessionCookie returns the request's session cookie if it is one this
// UI's format allows.
func sessionCookie(r *http.Request) string {
	c, err := r.Cookie(cookieName(r))
	if err != nil {
		return ""
	}
	if b, err := base64.RawURLEncoding.DecodeString(c.Value); err != nil || len(b) != cookieBytes {
		return ""
	}
	return c.Value
}

func (g *guard) tokenValid(r *http.Request) bool {
	c := sessionCookie(r)
	got := r.Header.Get(TokenHeader)
	if c == "" || got == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(g.token(c))) == 1
}

// session answers the token of the browser's session, starting one when
// the browser has none. Tabs of one browser share the cookie, so a second
// tab keeps the first one's session rather than ending it.
func (g *guard) session(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		refuse(w, http.StatusMethodNotAllowed, "method", "GET only")
		return
	}
	c := sessionCookie(r)
	if c == "" {
		b := make([]byte, cookieBytes)
		rand.Read(b)
		c = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: c, Path: "/", HttpOnly: true,
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
