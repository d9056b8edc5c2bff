package ui

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzHostAllowed: whatever the Host header, the guard answers it only for
// a configured name, or localhost or a loopback address on the UI's port,
// and refuses everything else with 421, never a crash.
func FuzzHostAllowed(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8791", "localhost:8791", "[::1]:8791", "LOCALHOST.:8791", "herald.test", "herald.test:1",
		"evil.example:8791", "localhost.evil.example:8791", "127.0.0.1:1", ":8791", "[::1]", "127.0.0.1", "[", "a:b:c", "[::ffff:127.0.0.1]:8791"} {
		f.Add(s)
	}
	g := newGuard([]string{"herald.test"}, NewKey(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8791}
	f.Fuzz(func(t *testing.T, host string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Host = host
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
		ok := g.hostAllowed(r)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		if ok != (w.Code != http.StatusMisdirectedRequest) {
			t.Fatalf("Host %q: allowed %v but answered %d", host, ok, w.Code)
		}
		if !ok {
			return
		}
		name, port, _ := splitHost(host)
		ip := net.ParseIP(name)
		switch {
		case name == "herald.test":
		case port == "8791" && (name == "localhost" || (ip != nil && ip.IsLoopback())):
		default:
			t.Fatalf("Host %q (name %q, port %q) was allowed", host, name, port)
		}
	})
}

// FuzzGuardSession: whatever cookie, key header, Authorization header and
// token a request carries, the guard lets a read of the phone's state
// through only for the UI's own key (as a bearer token) or a cookie that
// key signed, and starts a session only for those or the key in
// KeyHeader; never a crash.
func FuzzGuardSession(f *testing.F) {
	const key = "q3J0c2VjcmV0LWtleS1mb3ItZnV6emluZy10aGUtZ3VhcmQ"
	g0 := newGuard(nil, key, nil)
	f.Add(g0.newCookie(), key, "Bearer "+key, "")
	f.Add("", "", "", "")
	f.Add(strings.Repeat("A", 43), key+"x", "Bearer  "+key, "tok")
	f.Add(g0.newCookie()[:42]+"B", "", "bearer "+key, "")
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8791}
	f.Fuzz(func(t *testing.T, cookie, keyHdr, authz, token string) {
		passed := false
		g := newGuard(nil, key, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { passed = true }))
		signed := func(v string) bool {
			b, err := base64.RawURLEncoding.DecodeString(v)
			if err != nil || len(b) != cookieBytes {
				return false
			}
			m := hmac.New(sha256.New, mac([]byte(key), "herald ui cookie"))
			m.Write(b[:nonceBytes])
			return hmac.Equal(m.Sum(nil)[:cookieBytes-nonceBytes], b[nonceBytes:])
		}
		bearer := strings.HasPrefix(authz, "Bearer ") && strings.TrimSpace(authz[len("Bearer "):]) == key
		req := func(path string) (*httptest.ResponseRecorder, *http.Request) {
			r := httptest.NewRequest(http.MethodGet, path, nil)
			r.Host = "127.0.0.1:8791"
			if cookie != "" {
				r.Header.Set("Cookie", "herald_ui_8791="+cookie)
			}
			for k, v := range map[string]string{KeyHeader: keyHdr, "Authorization": authz, TokenHeader: token} {
				if v != "" {
					r.Header.Set(k, v)
				}
			}
			return httptest.NewRecorder(), r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
		}
		w, r := req("/api/state")
		sent, _ := r.Cookie("herald_ui_8791")
		valid := sent != nil && signed(sent.Value)
		g.ServeHTTP(w, r)
		if passed != (valid || bearer) {
			t.Fatalf("cookie %q authz %q: let through %v, want %v (answered %d)", cookie, authz, passed, valid || bearer, w.Code)
		}
		if !passed && w.Code != http.StatusUnauthorized {
			t.Fatalf("refused with %d, want 401", w.Code)
		}
		w, r = req(SessionPath)
		g.ServeHTTP(w, r)
		keyOK := r.Header.Get(KeyHeader) == key
		if (w.Code == http.StatusOK) != (valid || bearer || keyOK) {
			t.Fatalf("session with cookie %q key %q authz %q: %d", cookie, keyHdr, authz, w.Code)
		}
		if set := w.Result().Cookies(); len(set) > 0 && (valid || !signed(set[0].Value)) {
			t.Fatalf("session set cookie %v (had a valid one: %v)", set, valid)
		}
	})
}

// FuzzLoadKey: a key file holds a key only if it is base64url of 16 or more
// bytes (surrounding space aside); whatever else it holds is refused, never
// a crash and never a key made of it.
func FuzzLoadKey(f *testing.F) {
	f.Add(NewKey() + "\n")
	f.Add("")
	f.Add("short")
	f.Add("====\n")
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join(t.TempDir(), KeyFile)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := LoadKey(path)
		want := strings.TrimSpace(content)
		raw, derr := base64.RawURLEncoding.DecodeString(want)
		ok := derr == nil && len(raw) >= 16
		if (err == nil) != ok || (err == nil && k != want) {
			t.Fatalf("content %q: key %q err %v, want ok=%v", content, k, err, ok)
		}
	})
}
