package server

import (
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Device connections that have not finished their hello cost a descriptor
// each and prove nothing: anyone can open them, and before these bounds
// one address opening thousands (each held until the hello timeout) took
// every descriptor the process had, so that accept failed for senders and
// devices alike. They are bounded per address (an IPv4 address, an IPv6
// /64: sourceOf) and in total, and the total never exceeds a quarter of
// the process's descriptor limit, leaving the rest to senders, devices
// that have said hello and the store. Past a bound the upgrade is refused
// with 503, a jittered Retry-After and the connection closed, before
// anything is upgraded.

// Defaults, each with the reason for its value.
const (
	// A hello is one round trip after the challenge: on loopback or a
	// LAN microseconds, on a slow mobile link a second or two. 64 at once
	// from one address takes a NAT of thousands of phones reconnecting
	// together (each refused one comes back after Retry-After), and is
	// what the body reads per address allow senders.
	DefaultMaxPendingHellosPerSource = 64
	// Many addresses opening connections without a hello share this;
	// a service with 4,096 handshakes under way at once is under attack
	// or reconnecting a whole fleet, and either way does better turning
	// the rest away for seconds than running out of descriptors.
	DefaultMaxPendingHellos = 4096
)

// helloTimeout is how long a device has to answer the challenge: the one
// round trip of a hello, with room for a slow mobile link several times
// over (RTTs of a second or two). It was 30 s, which let each connection
// that never says hello hold its descriptor three times as long.
const helloTimeout = 10 * time.Second

// pendingHellos counts the device connections that have not finished
// their hello, per source and in total.
type pendingHellos struct {
	perSource, total int

	mu    sync.Mutex
	n     map[string]int // source → connections waiting; absent at 0
	count int

	waiting prometheus.GaugeFunc
	refused *prometheus.CounterVec // by bound: "source" or "total"
}

// newPendingHellos sizes the bounds from the limits and the process's
// descriptor limit (nofile; 0 when unknown), logging when the total asked
// for had to be lowered to fit it.
func newPendingHellos(lim Limits, nofile uint64, log *slog.Logger) *pendingHellos {
	p := &pendingHellos{perSource: lim.MaxPendingHellosPerSource, total: lim.MaxPendingHellos, n: map[string]int{}}
	if nofile > 0 {
		quarter := int(min(nofile/4, 1<<30))
		if quarter < 1 {
			quarter = 1
		}
		if p.total > quarter {
			if lim.MaxPendingHellos != DefaultMaxPendingHellos && lim.MaxPendingHellos != math.MaxInt {
				log.Warn("device connections waiting for their hello bounded below the limit asked for, to keep descriptors for senders and devices",
					"asked", lim.MaxPendingHellos, "bound", quarter, "nofile", nofile)
			}
			p.total = quarter
		}
	}
	p.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_service_device_hellos_refused_total",
		Help: "Device upgrades refused with 503 because too many connections were waiting for their hello, by bound: from the same source, or in total.",
	}, []string{"bound"})
	p.refused.WithLabelValues("source")
	p.refused.WithLabelValues("total")
	p.waiting = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "herald_service_device_hellos_pending",
		Help: "Device connections upgraded and not yet through their hello.",
	}, func() float64 {
		p.mu.Lock()
		defer p.mu.Unlock()
		return float64(p.count)
	})
	return p
}

// acquire takes a place for a connection from source. release gives it
// back and may be called more than once.
func (p *pendingHellos) acquire(source string) (release func(), bound string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.count >= p.total:
		return nil, "total"
	case p.n[source] >= p.perSource:
		return nil, "source"
	}
	p.count++
	p.n[source]++
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			p.count--
			// Deleted at zero, so the map holds only sources with a
			// handshake under way.
			if p.n[source]--; p.n[source] <= 0 {
				delete(p.n, source)
			}
		})
	}, ""
}

// admitHello takes a place for a device's connection before it is
// upgraded, or answers 503 with a jittered Retry-After and closes the
// connection (ok false). The place is given back by release once the
// hello has been answered, whatever the answer, or the connection failed.
func (s *Server) admitHello(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	source := sourceOf(r.RemoteAddr)
	release, bound := s.hellos.acquire(source)
	if release != nil {
		return release, true
	}
	s.hellos.refused.WithLabelValues(bound).Inc()
	s.log.Debug("device upgrade refused: too many connections waiting for their hello", "source", source, "bound", bound)
	s.mu.Lock()
	after := s.retryDelayLocked()
	s.mu.Unlock()
	w.Header().Set("Retry-After", strconv.Itoa(after))
	// Closed, so a refused connection does not stay open as an idle
	// keep-alive holding the descriptor the bound is there to save.
	w.Header().Set("Connection", "close")
	http.Error(w, "heraldsvc: too many device connections waiting for their hello, retry later", http.StatusServiceUnavailable)
	return nil, false
}
