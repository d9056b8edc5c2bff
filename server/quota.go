package server

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server/store"
)

// Limits bounds what senders and enrolling devices may ask of the service.
// Zero values take the defaults below; a negative quota or rate turns that
// limit off.
type Limits struct {
	// DailyQuota is how many notifications an unauthenticated channel
	// takes per UTC day (by the service's clock) before senders get 406.
	DailyQuota int
	// ChannelRate and ChannelBurst limit notifications per second to one
	// channel, authenticated or not.
	ChannelRate  float64
	ChannelBurst int
	// SenderRate and SenderBurst limit requests per second from one sender
	// address (each channel of a multicast counts).
	SenderRate  float64
	SenderBurst int
	// MaxInFlight bounds the notifications being handled at once for
	// channels that exist (a slot is taken once the body is read and the
	// channel found); past it senders get 503 at once rather than a slow
	// answer.
	MaxInFlight int
	// MaxBodyReadsPerSource bounds the request bodies being read at once
	// from one address; past it that address gets 503, so slow bodies
	// from one address hold only their own connections. Negative: no
	// bound.
	MaxBodyReadsPerSource int
	// SlowStore is the store latency past which the service sheds load:
	// for ShedFor after a store call took longer, senders get 503.
	SlowStore time.Duration
	ShedFor   time.Duration
	// RetryAfter is what 503 answers put in Retry-After.
	RetryAfter time.Duration
	// MaxBodyBytes bounds a notification's body. It can lower MPNS's 3 KB
	// (to WP7's 1 KB for raw, say) but not raise it: the payload parser
	// holds the 3 KB line.
	MaxBodyBytes int
	// MaxHeaderBytes bounds the request headers of a notification, counted
	// as "Name: value\r\n" lines plus Host. The request line (the channel
	// URI, up to 1,024 characters itself) is not counted.
	MaxHeaderBytes int
	// MaxMulticast is the most channels one multicast request may name.
	MaxMulticast int
	// MaxDevicesPerSource caps the devices enrolled from one address.
	// Loopback is exempt (the emulator runs a thousand phones on one
	// host) unless LimitLoopback is set.
	MaxDevicesPerSource int
	LimitLoopback       bool
	// MaxPendingHellosPerSource and MaxPendingHellos bound the device
	// connections that have not finished their hello, from one address
	// and in total; past either the upgrade gets 503 (prehello.go). The
	// total is never more than a quarter of the descriptor limit.
	// Negative: no bound but that quarter.
	MaxPendingHellosPerSource int
	MaxPendingHellos          int
}

// Default limits, each with the reason for its value.
const (
	// MPNS's unauthenticated quota.
	DefaultDailyQuota = 500
	// No app needs more than a few notifications a second per phone,
	// but a sender catching up after an outage may send a day's
	// unauthenticated quota at once; floods are thousands a second.
	DefaultChannelRate  = 50
	DefaultChannelBurst = 500
	// A cloud service fanning out to many phones sends from one address;
	// the bound is there against floods, not against real senders.
	DefaultSenderRate  = 1000
	DefaultSenderBurst = 2000
	// Each request holds at most a 3 KB body and a store call; 1,024 at
	// once is a few MB and more than SQLite's group commit can take.
	DefaultMaxInFlight = 1024
	// A body normally arrives with its headers and is read in
	// microseconds, so even a sender fanning out over hundreds of
	// connections rarely has more than a few being read at once; a
	// script holding bodies back has all of them.
	DefaultMaxBodyReadsPerSource = 64
	// A store call normally takes milliseconds; a second means the disk
	// is struggling, and queueing more work only makes it worse.
	DefaultSlowStore = time.Second
	DefaultShedFor   = 10 * time.Second
	// MPNS told senders to back off in minutes after a 503.
	DefaultRetryAfter = 60 * time.Second
	// MPNS's limits.
	DefaultMaxBodyBytes   = mpns.MaxBodySize
	DefaultMaxHeaderBytes = 1024
	// One multicast then stays within the default sender burst.
	DefaultMaxMulticast = 100
	// A household or an office behind one NAT; more than this from one
	// address is a script enrolling devices.
	DefaultMaxDevicesPerSource = 100
)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.DailyQuota, DefaultDailyQuota)
	if l.ChannelRate == 0 {
		l.ChannelRate = DefaultChannelRate
	}
	def(&l.ChannelBurst, DefaultChannelBurst)
	if l.SenderRate == 0 {
		l.SenderRate = DefaultSenderRate
	}
	def(&l.SenderBurst, DefaultSenderBurst)
	def(&l.MaxInFlight, DefaultMaxInFlight)
	def(&l.MaxBodyReadsPerSource, DefaultMaxBodyReadsPerSource)
	defDur(&l.SlowStore, DefaultSlowStore)
	defDur(&l.ShedFor, DefaultShedFor)
	defDur(&l.RetryAfter, DefaultRetryAfter)
	if l.MaxBodyBytes <= 0 || l.MaxBodyBytes > mpns.MaxBodySize {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	def(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	def(&l.MaxMulticast, DefaultMaxMulticast)
	def(&l.MaxDevicesPerSource, DefaultMaxDevicesPerSource)
	def(&l.MaxPendingHellosPerSource, DefaultMaxPendingHellosPerSource)
	def(&l.MaxPendingHellos, DefaultMaxPendingHellos)
	for _, v := range []*int{&l.MaxPendingHellosPerSource, &l.MaxPendingHellos} {
		if *v < 0 {
			*v = math.MaxInt
		}
	}
	return l
}

// guard holds the state behind Limits: daily counts, rate limiters, the
// in-flight semaphore and the load-shedding deadline.
type guard struct {
	lim   Limits
	clock clock.Clock
	slots chan struct{}
	reads readSlots // bodies being read, per address

	// shared, for a node of a cluster, counts the daily quota across
	// the nodes; nil counts in daily.
	shared store.Quota
	log    *slog.Logger

	mu        sync.Mutex
	day       int64          // the UTC day the counts are for
	daily     map[string]int // channel id → notifications today
	channels  limiterSet
	senders   limiterSet
	shedUntil time.Time
}

func newGuard(l Limits, c clock.Clock) *guard {
	return &guard{
		lim: l, clock: c, slots: make(chan struct{}, l.MaxInFlight),
		reads:    readSlots{max: l.MaxBodyReadsPerSource},
		daily:    map[string]int{},
		channels: limiterSet{rate: l.ChannelRate, burst: l.ChannelBurst},
		senders:  limiterSet{rate: l.SenderRate, burst: l.SenderBurst},
	}
}

// acquire takes an in-flight slot, or reports that there is none.
func (g *guard) acquire() (release func(), ok bool) {
	select {
	case g.slots <- struct{}{}:
		return func() { <-g.slots }, true
	default:
		return nil, false
	}
}

// shedding reports whether the store was slow recently.
func (g *guard) shedding() bool {
	now := g.clock.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	return now.Before(g.shedUntil)
}

// observe records how long a store call took.
func (g *guard) observe(start time.Time) {
	now := g.clock.Now()
	if now.Sub(start) <= g.lim.SlowStore {
		return
	}
	g.mu.Lock()
	if until := now.Add(g.lim.ShedFor); until.After(g.shedUntil) {
		g.shedUntil = until
	}
	g.mu.Unlock()
}

// allowSender takes n tokens from the sender address's limiter.
func (g *guard) allowSender(addr string, n int) bool {
	if g.lim.SenderRate < 0 {
		return true
	}
	now := g.clock.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.senders.get(addr, now).AllowN(now, n)
}

// allowChannel applies the per-second limit and, for unauthenticated
// channels, the daily quota: nil, or the *senderRefusal (rate limited, quota
// used). A notification refused by the rate limit does not count against
// the day.
func (g *guard) allowChannel(ch store.Channel) *senderRefusal {
	now := g.clock.Now()
	ref, counted := g.allowChannelHere(ch, now)
	if ref == nil && !counted {
		// Counted by the cluster, outside the lock: it waits for the
		// store.
		return g.takeShared(ch, now)
	}
	return ref
}

// allowChannelHere applies what this node decides alone; counted is false
// when the daily quota is left for the cluster to count.
func (g *guard) allowChannelHere(ch store.Channel, now time.Time) (ref *senderRefusal, counted bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.lim.ChannelRate >= 0 && !g.channels.get(ch.ID, now).AllowN(now, 1) {
		return &senderRefusal{kind: refRateLimited, retryAfter: time.Second,
			reason: "more than " + strconv.FormatFloat(g.lim.ChannelRate, 'g', -1, 64) + " notifications per second to this channel"}, true
	}
	if ch.ServiceName != "" || g.lim.DailyQuota < 0 {
		return nil, true
	}
	if g.shared != nil {
		return nil, false
	}
	if day := now.UTC().Unix() / 86400; day != g.day {
		// A new day: every count starts again, and the map is dropped so
		// that it holds only channels used today.
		g.day, g.daily = day, map[string]int{}
	}
	if g.daily[ch.ID] >= g.lim.DailyQuota {
		return quotaRefusal(g.lim.DailyQuota, now), true
	}
	g.daily[ch.ID]++
	return nil, true
}

// sharedQuotaWait bounds counting with the cluster; past it the
// notification is let through (and the store, as slow, sheds load).
const sharedQuotaWait = 5 * time.Second

// takeShared counts the daily quota across the cluster. A count that fails
// lets the notification through: the quota keeps senders fair, and a
// store that cannot count will most likely not take the notification
// either.
func (g *guard) takeShared(ch store.Channel, now time.Time) *senderRefusal {
	ctx, cancel := context.WithTimeout(context.Background(), sharedQuotaWait)
	defer cancel()
	defer g.observe(g.clock.Now())
	ok, err := g.shared.Take(ctx, ch.ID, now.UTC().Unix()/86400, g.lim.DailyQuota)
	if err != nil {
		g.log.Warn("counting the daily quota failed", "channel", ch.ID, "err", err)
		return nil
	}
	if !ok {
		return quotaRefusal(g.lim.DailyQuota, now)
	}
	return nil
}

// limiterSet is a map of token buckets that forgets idle ones.
type limiterSet struct {
	rate  float64
	burst int
	m     map[string]*limiterEntry
	sweep int // size at which the next sweep runs
}

type limiterEntry struct {
	lim  *rate.Limiter
	last time.Time
}

// get returns key's limiter. Its caller holds the guard's lock; the
// limiter is only used under it, with the guard's clock.
func (s *limiterSet) get(key string, now time.Time) *rate.Limiter {
	if s.m == nil {
		s.m, s.sweep = map[string]*limiterEntry{}, 1024
	}
	e := s.m[key]
	if e == nil {
		if len(s.m) >= s.sweep {
			s.forgetIdle(now)
		}
		e = &limiterEntry{lim: rate.NewLimiter(rate.Limit(s.rate), s.burst)}
		s.m[key] = e
	}
	e.last = now
	return e.lim
}

// forgetIdle drops the limiters that have refilled completely: forgetting
// them changes nothing, since a new one starts full.
func (s *limiterSet) forgetIdle(now time.Time) {
	full := time.Duration(float64(s.burst) / s.rate * float64(time.Second))
	for k, e := range s.m {
		if now.Sub(e.last) > full {
			delete(s.m, k)
		}
	}
	s.sweep = max(1024, 2*len(s.m))
}

// timedStore times the store calls on the notification path, so a slow
// store is noticed; everything else passes straight through.
type timedStore struct {
	Store
	g *guard
}

// ChannelByToken times only lookups that find a channel (or fail): a made-up
// URI is nobody's notification, and anyone can send millions of them from
// many addresses, so if they counted, a flood of them that slowed the disk
// would have every sender answered 503.
func (t *timedStore) ChannelByToken(ctx context.Context, token string) (store.Channel, error) {
	start := t.g.clock.Now()
	ch, err := t.Store.ChannelByToken(ctx, token)
	if !errors.Is(err, store.ErrNotFound) {
		t.g.observe(start)
	}
	return ch, err
}

func (t *timedStore) Device(ctx context.Context, id string) (store.Device, error) {
	defer t.g.observe(t.g.clock.Now())
	return t.Store.Device(ctx, id)
}

func (t *timedStore) DeviceStatus(ctx context.Context, id string) (store.Device, error) {
	defer t.g.observe(t.g.clock.Now())
	return t.Store.DeviceStatus(ctx, id)
}

func (t *timedStore) Enqueue(ctx context.Context, q store.Queued, opts store.EnqueueOptions) (store.Queued, error) {
	defer t.g.observe(t.g.clock.Now())
	return t.Store.Enqueue(ctx, q, opts)
}

// headerBytes counts a request's headers as they came on the wire. Go's
// http.Server.MaxHeaderBytes adds 4 KB of slack to its limit, so the real
// limit is enforced here.
func headerBytes(r *http.Request) int {
	n := len("Host: \r\n") + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(": \r\n") + len(v)
		}
	}
	return n
}

// senderAddr is the source a request came from, as sourceOf keys it.
func senderAddr(r *http.Request) string {
	return sourceOf(r.RemoteAddr)
}

// sourceOf is the key the per-address limits (sender rate, body reads,
// devices enrolled) count a peer under: its IPv4 address, or the /64 its
// IPv6 address is in ("2001:db8::/64"). A single IPv6 host is usually
// given a whole /64 and can send from any address in it, so keying on the
// exact address would give it 2^64 budgets. IPv6 loopback stays "::1".
func sourceOf(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is4() || ip.IsLoopback() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return host
	}
	return p.String()
}

// admit applies the checks every notification request passes before its
// body is read: header size, body size, load and sender rate; maxBody is
// the protocol's bound on the body, 0 to leave the body to the caller. It
// takes no in-flight slot: a request holds one only for work the store will
// do (see accept), so requests that never finish sending, or name no
// channel, cannot crowd out anyone else's.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, channels int, maxBody int64) error {
	lim := s.guard.lim
	if n := headerBytes(r); n > lim.MaxHeaderBytes {
		return refuse(refMalformed, "headers are "+strconv.Itoa(n)+" bytes; the limit is "+strconv.Itoa(lim.MaxHeaderBytes))
	}
	if maxBody > 0 {
		if r.ContentLength > maxBody {
			return refuse(refTooLarge, "payload larger than "+strconv.FormatInt(maxBody, 10)+" bytes")
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	}
	if why := s.notReady(); why != "" {
		return s.unavailable(why)
	}
	if s.guard.shedding() {
		return s.unavailable("the store is slow; shedding load")
	}
	if !s.guard.allowSender(senderAddr(r), channels) {
		return &senderRefusal{kind: refRateLimited, retryAfter: time.Second,
			reason: "more than " + strconv.FormatFloat(lim.SenderRate, 'g', -1, 64) + " notifications per second from this address"}
	}
	return nil
}

// retryAfter is the Retry-After value of 503 answers, in seconds.
func (s *Server) retryAfter() string {
	return strconv.Itoa(int(s.guard.lim.RetryAfter / time.Second))
}

// enrolCapped reports whether enrolments from source count against the
// devices-per-source cap.
func (s *Server) enrolCapped(source string) bool {
	ip := net.ParseIP(source)
	return ip == nil || !ip.IsLoopback() || s.cfg.Limits.LimitLoopback
}

// enrolAllowed applies the devices-per-source cap at enrolment.
func (s *Server) enrolAllowed(ctx context.Context, source string) (bool, error) {
	n, err := s.cfg.Store.CountDevicesFromSource(ctx, source)
	if err != nil {
		return false, err
	}
	return n < s.cfg.Limits.MaxDevicesPerSource, nil
}
