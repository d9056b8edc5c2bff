package freeport

import (
	"net"
	"strconv"
	"testing"
)

// A picked port is below the ephemeral range and can be listened on.
func TestPortListens(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p := Port(t)
		if p < 10000 || p >= ephemeralLow() {
			t.Fatalf("port %d outside [10000, %d)", p, ephemeralLow())
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		ln.Close()
		seen[p] = true
	}
	if len(seen) < 2 {
		t.Errorf("20 picks gave %d distinct ports", len(seen))
	}
}
