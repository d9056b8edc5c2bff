package server

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// The total never passes a quarter of the descriptor limit, whatever was
// asked, and lowering what was asked for is logged; a release given
// twice gives back one place.
func TestPendingHellosSizing(t *testing.T) {
	for _, c := range []struct {
		name           string
		lim            Limits
		nofile         uint64
		wantTotal      int
		wantPerSource  int
		wantWarnLogged bool
	}{
		{"defaults, plenty of descriptors", Limits{}, 1 << 20, DefaultMaxPendingHellos, DefaultMaxPendingHellosPerSource, false},
		{"defaults, 1,500 descriptors", Limits{}, 1500, 375, DefaultMaxPendingHellosPerSource, false},
		{"asked for more than the descriptors allow", Limits{MaxPendingHellos: 10000}, 1000, 250, DefaultMaxPendingHellosPerSource, true},
		{"no bound asked, but the descriptors'", Limits{MaxPendingHellos: -1, MaxPendingHellosPerSource: -1}, 400, 100, int(^uint(0) >> 1), false},
		{"limit unknown", Limits{MaxPendingHellos: 7, MaxPendingHellosPerSource: 3}, 0, 7, 3, false},
		{"tiny limit", Limits{}, 2, 1, DefaultMaxPendingHellosPerSource, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := newPendingHellos(c.lim.withDefaults(), c.nofile, slog.New(slog.NewTextHandler(&buf, nil)))
			if p.total != c.wantTotal || p.perSource != c.wantPerSource {
				t.Fatalf("total %d, per source %d; want %d, %d", p.total, p.perSource, c.wantTotal, c.wantPerSource)
			}
			if got := strings.Contains(buf.String(), "level=WARN"); got != c.wantWarnLogged {
				t.Fatalf("warned %v, want %v: %s", got, c.wantWarnLogged, buf.String())
			}
		})
	}

	p := newPendingHellos(Limits{MaxPendingHellosPerSource: 1, MaxPendingHellos: 2}, 0, slog.Default())
	release, _ := p.acquire("a")
	if r, bound := p.acquire("a"); r != nil || bound != "source" {
		t.Fatalf("second from a: %v", bound)
	}
	release()
	release()
	ra, _ := p.acquire("a")
	rb, _ := p.acquire("b")
	if ra == nil || rb == nil {
		t.Fatal("places not given back")
	}
	if r, bound := p.acquire("c"); r != nil || bound != "total" {
		t.Fatalf("third source at the total: %q", bound)
	}
	ra()
	rb()
	if len(p.n) != 0 || p.count != 0 {
		t.Fatalf("left %v, %d", p.n, p.count)
	}
}

// BenchmarkPendingHellos is what the bound costs each device connection:
// a place taken and given back, from many goroutines at once.
func BenchmarkPendingHellos(b *testing.B) {
	p := newPendingHellos(Limits{}.withDefaults(), 0, slog.Default())
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			release, _ := p.acquire("192.0.2.1")
			if release != nil {
				release()
			}
		}
	})
}
