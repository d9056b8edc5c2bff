package ui

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
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
