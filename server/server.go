// Package server is the notification service: the MPNS HTTP endpoint that
// cloud services post to, the websocket endpoint devices keep open, and the
// routing and per-device queues between them.
//
// # Design: senders
//
// Every sender protocol (MPNS, multicast, Web Push, the Matrix gateway) is
// a decoder and a renderer over one accept pipeline (accept.go): the
// decoder turns a request into a submission, the pipeline queues it or
// refuses it with a typed refusal (refusals.go), and the renderer maps
// accepted or refused to the protocol's status and headers by the
// refusal's kind, never its text. A new sender protocol is one file.
//
// The package is not split into sender, device and limit packages: the
// three share the Server's sessions, its guard and its store, which a split
// would have to export to each other, and the seams are now files
// (accept.go and refusals.go for senders, session.go and enrol.go for
// devices, quota.go for limits) rather than one type's methods.
package server

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/defaults"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

// Store is what the service needs from its database: package store's
// contract, whose doc comment holds the ordering and durability promises
// the sessions rely on.
type Store = store.Store

// Config configures a Server. Zero values take the defaults below.
type Config struct {
	Store Store
	// Presence, for a node of a cluster, tells the nodes which one holds
	// each device; nil for a single node.
	Presence store.Presence
	// Quota, for a node of a cluster, counts daily quotas across the
	// nodes; nil counts them in this process.
	Quota store.Quota
	// PublicURL is the base of the channel URIs handed to devices, as cloud
	// services will reach this server (e.g. http://push.example.com).
	PublicURL string
	Clock     clock.Clock
	Logger    *slog.Logger

	// InactiveAfter is how long a device may be away before the service
	// stops queueing for it and answers 412.
	InactiveAfter time.Duration
	// ForgetDevicesAfter is how long a device may be away before it is
	// deleted with its channels and queue (its URIs then answer 404, and
	// it enrols anew if it ever comes back). It must be longer than
	// InactiveAfter. Unlike the other fields, zero (or negative) keeps
	// devices for ever: the sweep runs on Clock, and a service embedded
	// for one device has nothing to forget. heraldsvc serve sets
	// DefaultForgetDevicesAfter.
	ForgetDevicesAfter time.Duration
	// QueueDepth bounds each device's queue; past it senders get QueueFull.
	QueueDepth int
	// MinHeartbeat is the shortest interval between device pings the
	// service accepts; a device pinging faster is disconnected.
	MinHeartbeat time.Duration
	// MaxIdle is how long a connection may stay silent (no frame, no ping)
	// before the service drops it.
	MaxIdle time.Duration
	// MaxChannelsPerDevice is MPNS's 30 channels per device.
	MaxChannelsPerDevice int
	// WriteTimeout bounds each websocket write.
	WriteTimeout time.Duration
	// MaxDevices, if set, bounds the live device connections; past it the
	// service sheds load, refusing upgrades with 503 and Retry-After.
	MaxDevices int
	// RetrySpread is the window over which devices told to retry later
	// (on shutdown or when shed) are spread: each gets a random delay in
	// it, so they do not all come back in the same second.
	RetrySpread time.Duration
	// Rand returns a float in [0,1) for the spread; nil uses math/rand/v2.
	Rand func() float64
	// StoreLostAfter is how long a store that can say it is not ready
	// (a cluster's, cut off from NATS) may stay so before the node asks
	// its devices to retry later, each after its own delay within
	// RetrySpread, so that they reconnect to nodes that can serve them.
	StoreLostAfter time.Duration

	// Limits bounds what senders and enrolling devices may ask of the
	// service (quotas, rates, sizes, load); see quota.go.
	Limits Limits
	// AuthURL is the base of the https channel URIs of channels registered
	// with a service name (e.g. https://push.example.com:8791); "" means the
	// service has no authenticated senders and refuses such channels.
	AuthURL string
	// ClientCAs verifies the client certificates of authenticated senders.
	ClientCAs *x509.CertPool
}

// Defaults, each with the reason for its value.
const (
	// A phone switched off over a long weekend or a long-haul flight is
	// still a phone its owner expects to receive on; three days covers
	// both, and a sender learns of anything longer through 412.
	DefaultInactiveAfter = 72 * time.Hour
	// A phone not seen for three months has been replaced, reset or
	// thrown away; its channels only take up room and answer senders 412.
	DefaultForgetDevicesAfter = 90 * 24 * time.Hour
	// MPNS's unauthenticated quota is 500 notifications per channel per
	// day, so one app at its full quota fits a device away for a day.
	// Tile updates merge and do not use up the queue.
	DefaultQueueDepth = 500
	// Devices learn their network's idle timeout and ping just under it;
	// below a minute a heartbeat costs more radio time than it can save.
	DefaultMinHeartbeat = 60 * time.Second
	// A device's heartbeat may reach its ceiling, about two hours (see
	// docs/power.md), and keeps it under a tenth less than this; two
	// missed heartbeats (plus slack) mean it is gone.
	DefaultMaxIdle = 4 * time.Hour
	// MPNS allowed 30 channels per device.
	DefaultMaxChannelsPerDevice = 30
	// A write that does not finish in 10 s is to a dead or stuck peer.
	DefaultWriteTimeout = 10 * time.Second
	// A restart takes seconds, and a user should not wait much longer than
	// that; ten seconds keeps the reconnect rate to a tenth of the devices
	// a second, and each device's own jittered backoff spreads them more.
	DefaultRetrySpread = 10 * time.Second
	// A NATS client rides out a server's restart by reconnecting to
	// another within a second or two; longer than three seconds, the node
	// is cut off and its devices are better served elsewhere.
	DefaultStoreLostAfter = 3 * time.Second
)

// URI path prefixes, as MPNS's channel URIs had them.
const (
	ThrottledPath   = "/throttledthirdparty/01.00/"
	UnthrottledPath = "/unthrottledthirdparty/01.00/"
	DevicePath      = "/device"
)

// Server routes notifications from cloud services to devices.
type Server struct {
	cfg Config
	log *slog.Logger

	guard   *guard     // quotas, rate limits and load shedding
	enrolMu sync.Mutex // serialises enrolments for the per-address cap
	metrics *metrics

	hellos *pendingHellos // device connections before their hello (prehello.go)

	mu       sync.Mutex
	sessions map[string]*session // device id → its one live session
	closed   bool
	// expiring is closed by the first message with an expiry, which
	// starts Run's sweep of expired messages (startExpiringMessages).
	expiring     chan struct{}
	expiringOnce sync.Once
	// wg counts device connections from upgrade to the end of their
	// session; closing cancels ctx, which ends those still saying hello.
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
	// readiness is the store's, when it may not be usable yet.
	readiness store.Readiness
	// retirements counts RetireDevice calls, so that a session started
	// from a device read before a retirement committed is caught.
	retirements atomic.Uint64
	// told counts the commits the store has told of, per shard of device
	// ids, and devicesCurrent is the store's promise that its device
	// reads see every commit told before them: with both, a returning
	// device's session need not read its queue to learn it is empty
	// (firstlook.go).
	told           *commitsTold
	devicesCurrent bool
}

// New returns a Server. It starts no goroutine: Run does the server's own
// background work, and Close stops its sessions.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: no store")
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("server: no public URL")
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	defaults.Set[clock.Clock](&cfg.Clock, clock.Real{})
	defaults.Set(&cfg.Logger, slog.Default())
	defaults.Positive(&cfg.InactiveAfter, DefaultInactiveAfter)
	if cfg.ForgetDevicesAfter > 0 && cfg.ForgetDevicesAfter <= cfg.InactiveAfter {
		return nil, fmt.Errorf("server: devices are forgotten after %v, not longer than the %v after which they count as inactive",
			cfg.ForgetDevicesAfter, cfg.InactiveAfter)
	}
	defaults.Positive(&cfg.QueueDepth, DefaultQueueDepth)
	defaults.Positive(&cfg.MinHeartbeat, DefaultMinHeartbeat)
	defaults.Positive(&cfg.MaxIdle, DefaultMaxIdle)
	defaults.Positive(&cfg.MaxChannelsPerDevice, DefaultMaxChannelsPerDevice)
	defaults.Positive(&cfg.WriteTimeout, DefaultWriteTimeout)
	defaults.Positive(&cfg.RetrySpread, DefaultRetrySpread)
	defaults.Positive(&cfg.StoreLostAfter, DefaultStoreLostAfter)
	if cfg.Rand == nil {
		cfg.Rand = mrand.Float64
	}
	if err := checkURIBase(cfg.PublicURL, cfg.AuthURL); err != nil {
		return nil, err
	}
	cfg.AuthURL = strings.TrimRight(cfg.AuthURL, "/")
	cfg.Limits = cfg.Limits.withDefaults()
	g := newGuard(cfg.Limits, cfg.Clock)
	g.shared, g.log = cfg.Quota, cfg.Logger
	g.failovers, _ = cfg.Store.(store.Failovers)
	s := &Server{cfg: cfg, log: cfg.Logger, guard: g, sessions: map[string]*session{}, metrics: newMetrics(), expiring: make(chan struct{})}
	s.readiness, _ = cfg.Store.(store.Readiness)
	s.told = newCommitsTold()
	if c, ok := cfg.Store.(store.CurrentDevices); ok {
		s.devicesCurrent = c.DevicesCurrent()
	}
	s.metrics.instrument(s, cfg.Store)
	s.hellos = newPendingHellos(cfg.Limits, nofileLimit(), cfg.Logger)
	s.metrics.reg.MustRegister(s.hellos.waiting, s.hellos.refused)
	cfg.Store.OnCommitted(s.committed)
	if r, ok := cfg.Store.(store.CommitReporter); ok {
		r.ReportCommits(s.metrics.commit)
	}
	if cfg.Presence != nil {
		cfg.Presence.OnTakeover(s.takenOver)
	}
	// Every store call is timed, so a slow database turns into 503s for
	// senders instead of a pile of waiting requests.
	// Every call is also observed for the metrics, whichever the backend.
	s.cfg.Store = &timedStore{Store: store.Observe(cfg.Store, s.metrics.store), g: g}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Run does the server's background work until ctx ends or the server is
// closed: deleting the devices that never came back (ForgetDevicesAfter)
// and the Web Push messages past their TTL. The sessions are the
// connections' own, and Close ends them.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	var wg sync.WaitGroup
	if s.cfg.ForgetDevicesAfter > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); s.expireLoop(ctx, s.cfg.Store) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.expireMessagesLoop(ctx) }()
	if s.readiness != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.storeLossLoop(ctx) }()
	}
	wg.Wait()
	return nil
}

// Handler serves both endpoints.
func (s *Server) Handler() http.Handler { return s.handler(false) }

// handler is Handler; keepAliveOff says every listener it is served on
// has TCP keepalive off already (Listen), as the Service's have.
func (s *Server) handler(keepAliveOff bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(ThrottledPath, s.handleNotification)
	mux.HandleFunc(UnthrottledPath, s.handleNotification)
	mux.HandleFunc(DevicePath, func(w http.ResponseWriter, r *http.Request) { s.handleDevice(w, r, keepAliveOff) })
	mux.HandleFunc(BrowserPath, s.handleBrowser)
	mux.HandleFunc(MulticastPath, s.handleMulticast)
	mux.HandleFunc(MatrixNotifyPath, s.handleMatrix)
	mux.Handle("GET "+MetricsPath, s.metrics.handler(s.log))
	mux.HandleFunc(ReadyPath, probeOnly(s.handleReady))
	mux.HandleFunc(HealthPath, probeOnly(s.handleHealth))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "heraldsvc: POST MPNS notifications to channel URIs; devices connect to", DevicePath)
	})
	return cleanPaths(mux)
}

// Close disconnects every device, asking each to retry later after its own
// random delay within RetrySpread, and waits for their sessions to end.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.cancel()
	for _, sess := range s.sessions {
		sess.close(wire.CloseRetryLater, strconv.Itoa(s.retryDelayLocked()))
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// retryDelayLocked picks a retry-later delay in whole seconds, at least 1,
// spread over RetrySpread. cfg.Rand is called under s.mu, so a test's
// deterministic source need not be safe for concurrent use.
func (s *Server) retryDelayLocked() int {
	return 1 + int(s.cfg.Rand()*s.cfg.RetrySpread.Seconds())
}

// shed refuses a device's upgrade with 503 and a jittered Retry-After when
// the service is shutting down, at MaxDevices or not ready. It reports
// whether it did.
func (s *Server) shed(w http.ResponseWriter) bool {
	s.mu.Lock()
	refuse := s.closed || (s.cfg.MaxDevices > 0 && len(s.sessions) >= s.cfg.MaxDevices)
	var after int
	if refuse {
		after = s.retryDelayLocked()
	}
	s.mu.Unlock()
	why := "shedding load"
	if !refuse {
		// Until the store is usable a device's hello could only fail.
		if why = s.notReady(); why == "" {
			return false
		}
		s.mu.Lock()
		after = s.retryDelayLocked()
		s.mu.Unlock()
	}
	w.Header().Set("Retry-After", strconv.Itoa(after))
	http.Error(w, "heraldsvc: "+why+", retry later", http.StatusServiceUnavailable)
	return true
}

// Connected reports whether the device has a live session.
func (s *Server) Connected(deviceID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.sessions[deviceID]
	return ok
}

// ConnectedCount returns the number of live sessions.
func (s *Server) ConnectedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Disconnect drops a device's session (for tests and the emulator's
// connectivity switch).
func (s *Server) Disconnect(deviceID string) {
	s.mu.Lock()
	sess := s.sessions[deviceID]
	s.mu.Unlock()
	if sess != nil {
		sess.close(CloseGoingAway, "")
		<-sess.done
	}
}

// committed is the store's commit hook. It runs on the store's committer,
// so it only hands the notification to the device's session, if it has one
// here, without waiting for anything the session holds.
func (s *Server) committed(q store.Queued) {
	// Counted before the session is looked for: a session that becomes
	// live after this look misses the commit, and must see the count
	// changed (firstlook.go).
	if store.IsResync(q) {
		s.told.resync()
		s.mu.Lock()
		for _, sess := range s.sessions {
			sess.resync()
		}
		s.mu.Unlock()
		return
	}
	s.told.told(q.DeviceID)
	if sess := s.session(q.DeviceID); sess != nil {
		sess.committed(q)
	}
}

// takenOver ends the device's session here if another node took the
// device after this session started.
func (s *Server) takenOver(deviceID string, held uint64) {
	if sess := s.session(deviceID); sess != nil {
		sess.takenOver(held)
	}
}

func (s *Server) session(deviceID string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[deviceID]
}

func (s *Server) channelURI(c store.Channel) string {
	if c.ServiceName != "" {
		return s.cfg.AuthURL + UnthrottledPath + c.Token
	}
	return s.cfg.PublicURL + ThrottledPath + c.Token
}

// newToken returns n random bytes, URL-safe base64 encoded.
func newToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // the OS has no randomness; nothing is safe
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Listen listens on addr with TCP keepalive off: the device owns the
// heartbeat, and the kernel's keepalive probes would wake its radio.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(ctx, "tcp", addr)
}
