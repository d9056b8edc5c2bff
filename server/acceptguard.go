package server

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// acceptWarnEvery bounds the warnings of failed accepts: a process out of
// descriptors fails every accept, and one line per failure would flood
// the log (and the disk it is on) while telling nothing new.
const acceptWarnEvery = 10 * time.Second

// shedWait bounds the accept of a connection to close on the reserve
// descriptor; the connection is normally in the queue already.
const shedWait = 10 * time.Millisecond

// acceptErrors counts and reports the listeners' failed accepts. One is
// shared by every listener of a service.
type acceptErrors struct {
	log     *slog.Logger
	now     func() time.Time
	counter *prometheus.CounterVec // by reason: "descriptors" or "other"

	mu         sync.Mutex
	lastWarn   time.Time
	suppressed int
}

func newAcceptErrors() *acceptErrors {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "herald_service_accept_errors_total",
		Help: "Connections the listeners failed to accept, by reason: the process or the system out of file descriptors (EMFILE, ENFILE), or other.",
	}, []string{"reason"})
	c.WithLabelValues("descriptors")
	c.WithLabelValues("other")
	return &acceptErrors{log: slog.Default(), now: time.Now, counter: c}
}

// failed counts an accept error and warns of it, at most once per
// acceptWarnEvery with the number left unsaid since.
func (a *acceptErrors) failed(addr string, err error, descriptors bool) {
	reason := "other"
	if descriptors {
		reason = "descriptors"
	}
	a.counter.WithLabelValues(reason).Inc()
	now := a.now()
	a.mu.Lock()
	if !a.lastWarn.IsZero() && now.Sub(a.lastWarn) < acceptWarnEvery {
		a.suppressed++
		a.mu.Unlock()
		return
	}
	suppressed := a.suppressed
	a.lastWarn, a.suppressed = now, 0
	a.mu.Unlock()
	if descriptors {
		a.log.Warn("accepting connections failed: out of file descriptors; the waiting connection is closed",
			"addr", addr, "err", err, "since_last_warning", suppressed)
		return
	}
	a.log.Warn("accepting a connection failed", "addr", addr, "err", err, "since_last_warning", suppressed)
}

// guardedListener reports failed accepts, and keeps one descriptor in
// reserve for when the process has none left: it lets go of it to accept
// the connection waiting and close it at once, so that the peer hears no
// at once instead of waiting in the listen queue (and retrying into it)
// until something else frees a descriptor, then takes it back.
type guardedListener struct {
	net.Listener
	errs *acceptErrors

	mu      sync.Mutex
	reserve *os.File // nil while given up and not yet taken back
}

func guardListener(l net.Listener, errs *acceptErrors) *guardedListener {
	g := &guardedListener{Listener: l, errs: errs}
	g.reserve, _ = os.Open(os.DevNull)
	return g
}

func (g *guardedListener) Accept() (net.Conn, error) {
	c, err := g.Listener.Accept()
	if err == nil {
		return c, nil
	}
	if errors.Is(err, net.ErrClosed) {
		return nil, err
	}
	descriptors := errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
	g.errs.failed(g.Addr().String(), err, descriptors)
	if descriptors {
		g.shed()
	}
	// net/http retries a temporary error (EMFILE and ENFILE are) after a
	// short, growing pause.
	return nil, err
}

// shed accepts and closes one waiting connection on the reserve
// descriptor.
func (g *guardedListener) shed() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.reserve != nil {
		g.reserve.Close()
		g.reserve = nil
		// The connection that failed may have gone meanwhile; a short
		// deadline keeps this from waiting for, and closing, a later one.
		if d, ok := g.Listener.(interface{ SetDeadline(time.Time) error }); ok {
			d.SetDeadline(time.Now().Add(shedWait))
			defer d.SetDeadline(time.Time{})
		}
		if c, err := g.Listener.Accept(); err == nil {
			c.Close()
		}
	}
	// Taken back now, or at the next failure if descriptors are still
	// short.
	g.reserve, _ = os.Open(os.DevNull)
}

func (g *guardedListener) Close() error {
	g.mu.Lock()
	if g.reserve != nil {
		g.reserve.Close()
		g.reserve = nil
	}
	g.mu.Unlock()
	return g.Listener.Close()
}
