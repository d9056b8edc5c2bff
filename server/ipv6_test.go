package server_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// TestSenderRateByIPv6Prefix: the per-address sender rate counts an IPv6
// sender by its /64, so stepping to another address in the same /64 does
// not buy a fresh budget; another /64 has its own.
func TestSenderRateByIPv6Prefix(t *testing.T) {
	ts := startService(t, server.Config{Limits: server.Limits{SenderRate: 1, SenderBurst: 2}})
	h := ts.srv.Handler()
	send := func(remote string) int {
		r := httptest.NewRequest(http.MethodPost, server.ThrottledPath+"madeupAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", bytes.NewReader(toastBody("x")))
		r.Header.Set(mpns.HeaderTarget, "toast")
		r.Header.Set(mpns.HeaderNotificationClass, "2")
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	tests := []struct {
		remote string
		want   int
	}{
		{"[2001:db8::1]:1000", http.StatusNotFound},
		{"[2001:db8::1]:1001", http.StatusNotFound},
		{"[2001:db8::1]:1002", http.StatusNotAcceptable},
		{"[2001:db8::2]:1000", http.StatusNotAcceptable},
		{"[2001:db8::dead:beef:1]:1000", http.StatusNotAcceptable},
		{"[2001:db8:0:1::1]:1000", http.StatusNotFound},
	}
	answered := map[int]int{}
	for _, tt := range tests {
		got := send(tt.remote)
		if got != tt.want {
			t.Errorf("from %s: %d, want %d", tt.remote, got, tt.want)
		}
		answered[got]++
	}
	t.Logf("sender rate 1/s, burst 2, from 3 addresses of 2001:db8::/64 and 1 of 2001:db8:0:1::/64: %d requests, answered %v (406: the /64's budget spent)", len(tests), answered)
}
