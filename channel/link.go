// Package channel is the device's end of its one link to the notification
// service: dial, hello, register and bind channels, receive and acknowledge
// notifications, keep the connection alive with the fewest wakeups, and
// reconnect with jittered backoff.
package channel

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/defaults"
	"github.com/heraldpush/herald/wire"
)

// Errors a caller acts on.
var (
	// ErrNotConnected: the link is down and did not come up in time.
	ErrNotConnected = errors.New("channel: not connected to the notification service")
	// ErrClosed: the link has been shut down.
	ErrClosed = errors.New("channel: link closed")
)

// ServiceError is a refusal from the service, with one of wire's codes.
type ServiceError struct {
	Code    string
	Message string
}

func (e *ServiceError) Error() string {
	if e.Message == "" {
		return "channel: service refused: " + e.Code
	}
	return "channel: service refused: " + e.Code + ": " + e.Message
}

// Identity is the device's enrolment with a service.
type Identity struct {
	ID     string
	Secret string
}

// Handler is the daemon's side of the link. Its methods are called from the
// link's goroutines and must not call back into the link synchronously.
type Handler interface {
	// Session returns what the hello announces: the identity (empty to
	// enrol), the highest sequence number applied, and the power level.
	Session(ctx context.Context) (id Identity, lastSeq uint64, power string, err error)
	// Enrolled stores a new identity before it is used.
	Enrolled(ctx context.Context, id Identity) error
	// Rejected is called when the service has proven that it will not
	// accept the identity again (a refusal it signed, or one over verified
	// TLS): the handler forgets it so the next attempt enrols.
	Rejected(ctx context.Context) error
	// Apply applies notifications and records the highest sequence number
	// in the same transaction; the link acknowledges once it returns nil.
	Apply(ctx context.Context, ns []wire.Notification) error
	// URIChanged and Expired pass on the service's announcements.
	URIChanged(channelID, uri string)
	Expired(channelID string)
	// StatusChanged reports the link going up or down.
	StatusChanged(connected bool)
}

// Config configures a Link.
type Config struct {
	// Service is the notification service's base URL (http or https), or
	// several, comma-separated (the nodes of a cluster): the link tries
	// the first first, and after each attempt or connection that fails
	// the next, after its jittered backoff; the order after the first is
	// the link's own (drawn with Rand), so that a failed node's devices
	// spread over the rest.
	Service string
	Handler Handler
	Clock   clock.Clock
	Logger  *slog.Logger
	// Heartbeat is the interval between pings on an idle link on a network
	// the link knows nothing about; it adapts between HeartbeatFloor (or
	// the service's minimum, if higher) and HeartbeatCeiling (or the
	// network's, from a Handler that is a NetworkCeiling; never past the
	// service's max_idle).
	Heartbeat                        time.Duration
	HeartbeatFloor, HeartbeatCeiling time.Duration
	// HeartbeatTimeout is how long a ping may go unanswered before the link
	// counts as dead.
	HeartbeatTimeout time.Duration
	// BackoffMin and BackoffMax bound reconnect delays.
	BackoffMin, BackoffMax time.Duration
	// ReconnectJitter bounds the random delay before reconnecting when the
	// network comes back (NetworkUp), so that devices seeing the same
	// outage end do not dial in the same instant.
	ReconnectJitter time.Duration
	// Rand returns a float in [0,1) for every jitter; nil uses math/rand/v2.
	Rand func() float64
	// Dial overrides the TCP dialer (tests use it to route through a
	// simulated NAT).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS configures an https service's connection (see ClientTLS); nil
	// verifies it against the system's roots.
	TLS *tls.Config
	// TrustRefusals takes a refusal (close 4003) the service cannot prove
	// at its word even over plain http: only for a service nothing can
	// stand between, such as one running in the same process. Over https
	// a refusal is always taken, since the connection is verified.
	TrustRefusals bool
}

// Defaults, with their reasons.
const (
	// Carrier NATs keep idle flows for 5 to 30 minutes; four minutes is
	// under nearly all of them.
	DefaultHeartbeat = 4 * time.Minute
	// A pong over a working mobile link comes back in well under a second;
	// 15 s allows for a radio waking from its deepest state.
	DefaultHeartbeatTimeout = 15 * time.Second
	DefaultBackoffMin       = time.Second
	// Five minutes caps how long a device stays away after the service
	// comes back, and the jitter spreads reconnects over that window.
	DefaultBackoffMax = 5 * time.Minute
	// A couple of seconds is invisible to a user and spreads a cell's
	// worth of phones regaining coverage together.
	DefaultReconnectJitter = 2 * time.Second
	// A connection that lived this long was healthy: start backoff over.
	healthyAfter = 30 * time.Second
	dialTimeout  = 20 * time.Second
	writeTimeout = 10 * time.Second
)

// Link is the device's one connection to the service, kept up by Run.
type Link struct {
	cfg Config
	log *slog.Logger
	// urls are the services' websocket URLs; next is the one to dial
	// next (Run's goroutine alone moves it).
	urls []string
	next int

	mu        sync.Mutex
	conn      *conn         // nil while down
	up        chan struct{} // closed while a connection is up
	nextReq   uint64
	waiters   map[uint64]chan any
	reconnect chan bool // true: even before a service's retry-later
	stats     Stats
	mem       NetworkMemory // nil: nothing is remembered across starts
	network   string        // the network hb belongs to
	hb        adaptive
	// netCeiling is the network's heartbeat ceiling, svcCeiling the one
	// the service's max_idle allows (0: none).
	netCeiling, svcCeiling time.Duration
	wakes                  wakeLog
	off                    offline
}

// Link states, as Stats.State reports them.
const (
	StateConnecting = "connecting"
	StateConnected  = "connected"
	StateWaiting    = "waiting" // between attempts
)

// Stats describe the link for status displays.
type Stats struct {
	State      string
	Connected  bool
	Since      time.Time
	RetryAt    time.Time // while waiting: when the next attempt is due
	Reconnects int
	// Heartbeat is the current interval; Learned what the link knows
	// about this network's idle timeout. HeartbeatDue is when the next
	// ping goes out if the link stays idle (zero while a ping awaits its
	// pong or the link is down).
	Heartbeat    time.Duration
	HeartbeatDue time.Time
	Network      string
	Learned      Learned
	// Ceiling is the longest interval the link may learn on this network
	// now; FailedLastDay the heartbeats that went unanswered on it over
	// the last 24 hours.
	Ceiling       time.Duration
	FailedLastDay int
	// Pings and Pongs count heartbeats sent and answered; DeadLinks the
	// heartbeats that went unanswered.
	Pings, Pongs, DeadLinks int
	// Wakeups are the link's own outbound packets over the last hour.
	Wakeups   Wakeups
	LastError string
}

// New returns a Link; call Run to connect.
func New(cfg Config) (*Link, error) {
	if cfg.Handler == nil {
		return nil, errors.New("channel: no handler")
	}
	urls, err := deviceURLs(cfg.Service)
	if err != nil {
		return nil, err
	}
	defaults.Set[clock.Clock](&cfg.Clock, clock.Real{})
	defaults.Set(&cfg.Logger, slog.Default())
	defaults.Positive(&cfg.Heartbeat, DefaultHeartbeat)
	defaults.Positive(&cfg.HeartbeatTimeout, DefaultHeartbeatTimeout)
	defaults.Positive(&cfg.BackoffMin, DefaultBackoffMin)
	defaults.Positive(&cfg.BackoffMax, DefaultBackoffMax)
	defaults.Positive(&cfg.HeartbeatCeiling, DefaultHeartbeatCeiling)
	defaults.Positive(&cfg.HeartbeatFloor, min(DefaultHeartbeatFloor, cfg.Heartbeat))
	defaults.Positive(&cfg.ReconnectJitter, DefaultReconnectJitter)
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.Dial == nil {
		// Keepalive off: the link's own heartbeat is the only periodic
		// traffic, and the kernel's 15 s default would keep the radio up.
		d := &net.Dialer{Timeout: dialTimeout, KeepAlive: -1}
		cfg.Dial = d.DialContext
	}
	spread(urls, cfg.Rand)
	l := &Link{cfg: cfg, log: cfg.Logger, urls: urls, up: make(chan struct{}), waiters: map[uint64]chan any{},
		reconnect: make(chan bool, 1), stats: Stats{State: StateConnecting},
		hb: newAdaptive(cfg.Heartbeat, cfg.HeartbeatFloor, cfg.HeartbeatCeiling, DefaultHeartbeatPrecision)}
	l.mem, _ = cfg.Handler.(NetworkMemory)
	return l, nil
}

// spread shuffles every URL but the first: the first is where a device
// goes first, and the order of the rest is each device's own, so that the
// devices of a node that fails spread over the others instead of all
// moving to the one listed after it.
func spread(urls []string, rnd func() float64) {
	rest := urls[min(1, len(urls)):]
	for i := len(rest) - 1; i > 0; i-- {
		j := min(int(rnd()*float64(i+1)), i)
		rest[i], rest[j] = rest[j], rest[i]
	}
}

// verified reports whether the connection being made is TLS, verified
// against the configured roots (and pin), so that what arrives on it comes
// from the service. Only Run's goroutine calls it, as only it moves next.
func (l *Link) verified() bool { return strings.HasPrefix(l.urls[l.next], "wss://") }

// deviceURLs turns the comma-separated service URLs into their device
// endpoints.
func deviceURLs(services string) ([]string, error) {
	var out []string
	for _, s := range strings.Split(services, ",") {
		s = strings.TrimSpace(s)
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("channel: service URL %q must be http(s)://host[:port]", s)
		}
		u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
		u.Path = strings.TrimRight(u.Path, "/") + "/device"
		out = append(out, u.String())
	}
	return out, nil
}

// Stats returns a snapshot of the link's state.
func (l *Link) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	now := l.cfg.Clock.Now()
	s.Heartbeat, s.Learned, s.Network = l.hb.Interval, l.hb.Learned.clone(), l.network
	s.Ceiling, s.FailedLastDay = l.hb.ceiling, l.hb.FailedSince(now.Add(-failedWindow))
	s.Wakeups = l.wakes.lastHour(now)
	return s
}

func (l *Link) wake(k wakeKind) {
	l.mu.Lock()
	l.wakes.add(l.cfg.Clock.Now(), k)
	l.mu.Unlock()
}

// arm returns the heartbeat interval to arm now: a settled link's upward
// probe begins here, when its proven interval has held long enough.
func (l *Link) arm() time.Duration {
	l.mu.Lock()
	d, probing := l.hb.arm(l.cfg.Clock.Now())
	network, good := l.network, l.hb.Good
	l.mu.Unlock()
	if probing {
		l.log.Info("heartbeat probe", "network", network, "interval", d, "proven", good)
	}
	return d
}

// setCeiling applies the lower of the network's and the service's
// ceilings.
func (l *Link) setCeiling() {
	c := cmp.Or(l.netCeiling, l.cfg.HeartbeatCeiling)
	if l.svcCeiling > 0 {
		c = min(c, l.svcCeiling)
	}
	l.hb.setCeiling(c, l.cfg.Clock.Now())
}

// probed records the outcome of a heartbeat sent after idle of d, and
// remembers what changed for the network.
func (l *Link) probed(d time.Duration, answered bool) {
	l.mu.Lock()
	var changed bool
	now := l.cfg.Clock.Now()
	if answered {
		l.stats.Pongs++
		changed = l.hb.survived(d, now)
	} else {
		l.stats.DeadLinks++
		changed = l.hb.died(d, now)
	}
	learned, network := l.hb.Learned.clone(), l.network
	l.mu.Unlock()
	if changed {
		l.log.Info("heartbeat adapted", "network", network, "idle", d, "answered", answered,
			"interval", learned.Interval, "good", learned.Good, "bad", learned.Bad, "settled", learned.Settled,
			"next_probe", learned.NextProbe, "hold", learned.Hold)
		if l.mem != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := l.mem.SaveLearned(ctx, network, learned); err != nil {
				l.log.Warn("saving learned heartbeat failed", "network", network, "err", err)
			}
		}
	}
}

// identifyNetwork switches the heartbeat state to the network the device
// is on now, loading what was learned there before.
func (l *Link) identifyNetwork(ctx context.Context) {
	if l.mem == nil {
		return
	}
	network, err := l.mem.Network(ctx)
	if err != nil {
		l.log.Warn("identifying the network failed", "err", err)
		return
	}
	// Asked on every connect: a network may become metered without
	// changing its identity.
	var ceiling time.Duration
	if nc, ok := l.cfg.Handler.(NetworkCeiling); ok {
		ceiling = nc.HeartbeatCeiling(ctx, network)
	}
	l.mu.Lock()
	same := network == l.network
	l.netCeiling = max(ceiling, 0)
	if same {
		l.setCeiling()
	}
	l.mu.Unlock()
	if same {
		return
	}
	learned, ok, err := l.mem.LoadLearned(ctx, network)
	if err != nil {
		l.log.Warn("loading learned heartbeat failed", "network", network, "err", err)
	}
	l.mu.Lock()
	l.network = network
	l.setCeiling()
	if ok && err == nil {
		l.hb.load(learned, l.cfg.Clock.Now())
	} else {
		l.hb.reset()
	}
	interval, c := l.hb.Interval, l.hb.ceiling
	l.mu.Unlock()
	l.log.Info("network", "network", network, "known", ok, "heartbeat", interval, "ceiling", c)
}

// Connected reports whether the link is up.
func (l *Link) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conn != nil
}

// NetworkUp tells the link that the OS reports a network coming up. A link
// that is down cuts its backoff short to a brief jitter, but still waits
// out a service's retry-later: the service's load did not change with the
// device's network. A link that is up stays up unless the device is now on
// another network, where the old flow cannot work.
func (l *Link) NetworkUp() {
	if l.mem != nil && l.Connected() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		network, err := l.mem.Network(ctx)
		cancel()
		l.mu.Lock()
		same := err == nil && network == l.network
		l.mu.Unlock()
		if same {
			return
		}
	}
	l.kick(false)
}

// Reconnect drops the current connection, if any, and reconnects at once,
// even if the service asked for a longer wait: it is the caller's explicit
// request (a user, the emulator's connectivity switch), not an event that
// many devices see together.
func (l *Link) Reconnect() { l.kick(true) }

func (l *Link) kick(force bool) {
	l.mu.Lock()
	c := l.conn
	l.mu.Unlock()
	if c != nil {
		c.cancel()
	}
	select {
	case l.reconnect <- force:
	default:
	}
}

// Run keeps the link up until ctx ends.
func (l *Link) Run(ctx context.Context) error {
	bo := Backoff{Min: l.cfg.BackoffMin, Max: l.cfg.BackoffMax, Rand: l.cfg.Rand}
	// The backoff's ceiling rises once per round of the service URLs, not
	// at every attempt: a node that failed or turned the device away says
	// nothing of the next, and each node still sees this device's
	// attempts no more often than a device of one URL's. Raised at every
	// attempt, a device refused by a loaded survivor of a killed node
	// spent its next steps on the dead node and waited 8 s and more.
	downs := 0
	clk := l.cfg.Clock
	for {
		if !l.waitOnline(ctx) {
			return nil
		}
		start := clk.Now()
		retryAfter, err := l.runOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		// The next attempt goes to the next service: a node that failed
		// or asked to be left alone may stay so, and any node serves.
		l.next = (l.next + 1) % len(l.urls)
		now := clk.Now()
		if now.Sub(start) >= healthyAfter {
			bo.Reset()
			downs = 0
		}
		if len(l.urls) > 1 {
			// Asked of this node alone; the next is another.
			retryAfter = 0
		}
		step := bo.Again
		if downs%len(l.urls) == 0 {
			step = bo.Next
		}
		downs++
		delay := max(step(), retryAfter)
		notBefore := now.Add(retryAfter)
		l.mu.Lock()
		l.stats.Reconnects++
		if err != nil {
			l.stats.LastError = err.Error()
		}
		l.stats.State, l.stats.RetryAt = StateWaiting, now.Add(delay)
		l.mu.Unlock()
		l.log.Info("link down", "err", err, "retry_in", delay.Round(time.Millisecond), "retry_after", retryAfter)
		if !l.wait(ctx, delay, notBefore) {
			return nil
		}
	}
}

// wait sleeps on the clock for delay. Reconnect ends it at once; NetworkUp
// cuts it short to a brief jitter, but not before notBefore. It reports
// false when ctx ended.
func (l *Link) wait(ctx context.Context, delay time.Duration, notBefore time.Time) bool {
	clk := l.cfg.Clock
	t := clk.NewTimer(delay)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C():
			return true
		case force := <-l.reconnect:
			if force {
				return true
			}
			d := max(time.Duration(l.cfg.Rand()*float64(l.cfg.ReconnectJitter)), notBefore.Sub(clk.Now()))
			t.Reset(d)
			l.mu.Lock()
			l.stats.RetryAt = clk.Now().Add(d)
			l.mu.Unlock()
		}
	}
}

// runOnce dials, says hello and serves one connection until it fails. It
// returns how long the service asked the device to stay away, if it did.
func (l *Link) runOnce(ctx context.Context) (time.Duration, error) {
	l.mu.Lock()
	l.stats.State = StateConnecting
	l.mu.Unlock()
	l.identifyNetwork(ctx)
	id, lastSeq, power, err := l.cfg.Handler.Session(ctx)
	if err != nil {
		return 0, fmt.Errorf("loading session: %w", err)
	}
	dialer := websocket.Dialer{
		NetDialContext:   l.cfg.Dial,
		TLSClientConfig:  l.cfg.TLS,
		HandshakeTimeout: dialTimeout,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	l.wake(wakeReconnect)
	ws, resp, err := dialer.DialContext(dctx, l.urls[l.next], nil)
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusServiceUnavailable {
			if after := parseRetryAfter(resp.Header.Get("Retry-After"), l.cfg.Clock.Now()); after > 0 {
				return after, fmt.Errorf("dial: service unavailable, retry after %v: %w", after, err)
			}
		}
		return 0, fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(wire.MaxFrameSize)
	c := newConn(l, ws)
	defer ws.Close()

	welcome, err := l.handshake(ctx, c, id, lastSeq, power)
	if err != nil {
		return c.retryAfter(err), err
	}
	l.mu.Lock()
	l.hb.setFloor(welcomeSeconds(welcome.MinHeartbeat), l.cfg.Clock.Now())
	// The service drops a connection silent for max_idle: a heartbeat
	// must come well before it (a tenth of it to spare).
	l.svcCeiling = 0
	if maxIdle := welcomeSeconds(welcome.MaxIdle); maxIdle > 0 {
		l.svcCeiling = maxIdle - maxIdle/10
	}
	l.setCeiling()
	l.mu.Unlock()
	return c.serve(ctx)
}

// welcomeSeconds reads a welcome's count of seconds, bounded to a week so
// that a service's absurd value neither overflows nor pins the heartbeat
// to its floor (0 for none or a negative one).
func welcomeSeconds(n int) time.Duration {
	return time.Duration(min(max(n, 0), 7*24*3600)) * time.Second
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(secs, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// request sends a frame that expects an answer and waits for it. If the
// link is down it waits for it to come up, until ctx ends.
func (l *Link) request(ctx context.Context, build func(req uint64) any) (any, error) {
	for {
		l.mu.Lock()
		c, up := l.conn, l.up
		l.mu.Unlock()
		if c == nil {
			select {
			case <-up:
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
			}
		}
		l.mu.Lock()
		l.nextReq++
		req := l.nextReq
		ch := make(chan any, 1)
		l.waiters[req] = ch
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			delete(l.waiters, req)
			l.mu.Unlock()
		}()
		if err := c.send(ctx, build(req)); err != nil {
			return nil, err
		}
		select {
		case v, ok := <-ch:
			if !ok {
				continue // the connection dropped; try again on the next
			}
			return v, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
		}
	}
}

// Register opens (or finds) the app's channel and returns its id and URI.
func (l *Link) Register(ctx context.Context, app, name, serviceName string, renew bool) (channelID, uri string, err error) {
	return l.RegisterChannel(ctx, wire.Register{App: app, Channel: name, ServiceName: serviceName, Renew: renew})
}

// RegisterChannel is Register with every field of the register frame
// (Type and ReqID are filled in): a Web Push channel's VAPIDKey.
func (l *Link) RegisterChannel(ctx context.Context, f wire.Register) (channelID, uri string, err error) {
	v, err := l.request(ctx, func(req uint64) any {
		f.Type, f.ReqID = wire.TypeRegister, req
		return f
	})
	if err != nil {
		return "", "", err
	}
	r, ok := v.(*wire.Registered)
	if !ok {
		return "", "", fmt.Errorf("channel: register: unexpected answer %T", v)
	}
	if r.Code != "" {
		return "", "", &ServiceError{Code: r.Code, Message: r.Message}
	}
	return r.ChannelID, r.URI, nil
}

// Unregister closes a channel on the service.
func (l *Link) Unregister(ctx context.Context, channelID string) error {
	return l.simple(ctx, func(req uint64) any {
		return wire.Unregister{Type: wire.TypeUnregister, ReqID: req, ChannelID: channelID}
	})
}

// Bind replaces a channel's shell bindings on the service.
func (l *Link) Bind(ctx context.Context, b wire.Bind) error {
	return l.simple(ctx, func(req uint64) any {
		b.Type, b.ReqID = wire.TypeBind, req
		return b
	})
}

// SetPower reports the device's power level.
func (l *Link) SetPower(ctx context.Context, level string) error {
	return l.simple(ctx, func(req uint64) any {
		return wire.State{Type: wire.TypeState, ReqID: req, Power: level}
	})
}

func (l *Link) simple(ctx context.Context, build func(req uint64) any) error {
	v, err := l.request(ctx, build)
	if err != nil {
		return err
	}
	r, ok := v.(*wire.Result)
	if !ok {
		return fmt.Errorf("channel: unexpected answer %T", v)
	}
	if r.Code != "" {
		return &ServiceError{Code: r.Code, Message: r.Message}
	}
	return nil
}

// interval is the heartbeat interval the link runs at now, which its hello
// tells the service.
func (l *Link) interval() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hb.Interval
}

// heartbeatDue records when the idle link's next ping is due.
func (l *Link) heartbeatDue(t time.Time) {
	l.mu.Lock()
	l.stats.HeartbeatDue = t
	l.mu.Unlock()
}
