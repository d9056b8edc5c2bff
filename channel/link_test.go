package channel_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/natsim"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// memHandler is a device with no database: identity and learned
// heartbeats live in memory.
type memHandler struct {
	mu      sync.Mutex
	power   string
	id      channel.Identity
	network string
	learned map[string]channel.Learned
	saves   int
	// lastSeq is the highest sequence number applied, announced in the
	// hello as a device's database would, so nothing is applied twice;
	// clk stamps applied notifications (nil: not recorded), and onApply
	// runs for each batch before it is acknowledged.
	lastSeq uint64
	clk     clock.Clock
	applied []time.Time
	onApply func()
}

func newMemHandler(network string) *memHandler {
	return &memHandler{network: network, learned: map[string]channel.Learned{}}
}

func (h *memHandler) Session(context.Context) (channel.Identity, uint64, string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.id, h.lastSeq, h.power, nil
}

func (h *memHandler) Enrolled(_ context.Context, id channel.Identity) error {
	h.mu.Lock()
	h.id = id
	h.mu.Unlock()
	return nil
}

func (h *memHandler) Rejected(context.Context) error {
	h.mu.Lock()
	h.id = channel.Identity{}
	h.mu.Unlock()
	return nil
}

func (h *memHandler) Apply(_ context.Context, ns []wire.Notification) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range ns {
		if n.Seq <= h.lastSeq {
			continue
		}
		h.lastSeq = n.Seq
		if h.clk != nil {
			h.applied = append(h.applied, h.clk.Now())
		}
	}
	if h.onApply != nil {
		h.onApply()
	}
	return nil
}

func (h *memHandler) Applied() []time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.applied)
}

func (h *memHandler) URIChanged(string, string) {}
func (h *memHandler) Expired(string)            {}
func (h *memHandler) StatusChanged(bool)        {}

func (h *memHandler) Network(context.Context) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.network, nil
}

func (h *memHandler) LoadLearned(_ context.Context, network string) (channel.Learned, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l, ok := h.learned[network]
	return l, ok, nil
}

func (h *memHandler) SaveLearned(_ context.Context, network string, l channel.Learned) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.learned[network] = l
	h.saves++
	return nil
}

// rig is one device behind a simulated NAT, talking to a real service
// over loopback; the device, the NAT and the service share a fake clock.
type rig struct {
	fc   *clock.Fake
	svc  *server.Service
	nat  *natsim.NAT
	h    *memHandler
	link *channel.Link
	drv  *natsim.Driver
}

const testTimeout = 15 * time.Second

func newRig(t testing.TB, natIdle time.Duration, svcCfg server.Config, linkCfg channel.Config) *rig {
	t.Helper()
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	svcCfg.Clock = fc
	svc := testenv.Service(t, "", server.ServeConfig{Server: svcCfg})
	nat, err := natsim.New(svc.Addr().String(), natIdle, fc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nat.Close() })
	h := newMemHandler("test-net")
	h.clk = fc
	linkCfg.Service, linkCfg.Handler, linkCfg.Clock = nat.URL(), h, fc
	linkCfg.Logger = testenv.Logger(t)
	linkCfg.HeartbeatTimeout = testTimeout
	if linkCfg.Rand == nil {
		linkCfg.Rand = func() float64 { return 0.5 }
	}
	link, err := channel.New(linkCfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		link.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	r := &rig{fc: fc, svc: svc, nat: nat, h: h, link: link,
		drv: &natsim.Driver{T: t, Clock: fc, NAT: nat, Link: link, Timeout: testTimeout}}
	return r
}

// TestHeartbeatConverges learns the idle timeout of a 5- and a 30-minute
// NAT through the real link, service and proxy: it settles within a
// bounded number of probes and then every heartbeat is answered, under T.
func TestHeartbeatConverges(t *testing.T) {
	tests := []struct {
		nat       time.Duration
		maxProbes int
		maxDeaths int
		within    time.Duration
	}{
		{nat: 5 * time.Minute, maxProbes: 6, maxDeaths: 3, within: 30 * time.Minute},
		{nat: 30 * time.Minute, maxProbes: 12, maxDeaths: 3, within: 5 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.nat.String(), func(t *testing.T) {
			r := newRig(t, tt.nat, server.Config{}, channel.Config{})
			probes, deaths := 0, 0
			began := r.fc.Now()
			for !r.link.Stats().Learned.Settled {
				if probes++; probes > tt.maxProbes {
					t.Fatalf("not settled after %d probes: %+v", tt.maxProbes, r.link.Stats().Learned)
				}
				if b := r.drv.Beat(); !b.Answered {
					deaths++
				}
			}
			if deaths > tt.maxDeaths {
				t.Fatalf("%d dead links while learning, want at most %d", deaths, tt.maxDeaths)
			}
			settled := r.link.Stats().Heartbeat
			if took := r.fc.Now().Sub(began); took > tt.within {
				t.Fatalf("settled after %v, want within %v", took, tt.within)
			}
			if settled >= tt.nat || settled < min(tt.nat, channel.DefaultHeartbeatCeiling)-channel.DefaultHeartbeatPrecision {
				t.Fatalf("settled at %v behind a %v NAT", settled, tt.nat)
			}
			// Steady state until the first upward probe: heartbeats, all
			// answered.
			start := r.fc.Now()
			before := r.link.Stats()
			next := before.Learned.NextProbe
			if next.Sub(start) > channel.DefaultProbeHold {
				t.Fatalf("next probe at %v, %v after settling", next, next.Sub(start))
			}
			for r.fc.Now().Add(settled).Before(next) {
				if b := r.drv.Beat(); !b.Answered || b.Interval != settled {
					t.Fatalf("steady state: %+v, want answered at %v", b, settled)
				}
			}
			after := r.link.Stats()
			if after.Reconnects != before.Reconnects {
				t.Fatalf("reconnected %d times in steady state", after.Reconnects-before.Reconnects)
			}
			r.h.mu.Lock()
			saved := r.h.learned["test-net"]
			r.h.mu.Unlock()
			if !saved.Equal(after.Learned) {
				t.Fatalf("remembered %+v, link has %+v", saved, after.Learned)
			}
			perHour := float64(after.Pings-before.Pings) / r.fc.Now().Sub(start).Hours()
			t.Logf("NAT %v: settled at %v after %d probes (%d dead), %.1f heartbeats/h", tt.nat, settled, probes, deaths, perHour)
			if tt.nat >= 30*time.Minute && after.Wakeups.Total() > 3 {
				t.Fatalf("%d wakeups in the last hour behind a %v NAT, budget 3: %+v", after.Wakeups.Total(), tt.nat, after.Wakeups)
			}
		})
	}
}

// TestDeadLinkNoticed drops the flow silently (no FIN, no RST) at various
// points of an idle interval; the link must notice within one interval
// plus the heartbeat timeout of the drop, and come back.
func TestDeadLinkNoticed(t *testing.T) {
	for _, into := range []time.Duration{0, time.Minute, 3*time.Minute + 59*time.Second} {
		t.Run(into.String(), func(t *testing.T) {
			r := newRig(t, 0, server.Config{}, channel.Config{})
			due := r.drv.Idle()
			interval := r.link.Stats().Heartbeat
			r.fc.Advance(into)
			dropped := r.fc.Now()
			r.nat.DropAll()
			if r.fc.Now().After(due) {
				t.Fatal("dropped after the heartbeat")
			}
			b := r.drv.Beat()
			if b.Answered {
				t.Fatal("a heartbeat on a dropped flow was answered")
			}
			if took := b.Noticed.Sub(dropped); took > interval+testTimeout {
				t.Fatalf("noticed %v after the drop, want at most %v + %v", took, interval, testTimeout)
			}
			r.drv.Idle()
			if st := r.link.Stats(); !st.Connected || st.DeadLinks != 1 {
				t.Fatalf("after the dead link: %+v", st)
			}
		})
	}
}

// TestNoTimerBetweenHeartbeats checks the link arms nothing but its
// heartbeat while idle, and that traffic pushes the heartbeat back.
func TestNoTimerBetweenHeartbeats(t *testing.T) {
	r := newRig(t, 0, server.Config{}, channel.Config{})
	due := r.drv.Idle()
	r.fc.Advance(time.Minute)
	if p := r.fc.Pending(); len(p) != 1 || !p[0].Equal(due) {
		t.Fatalf("pending timers %v, want only the heartbeat at %v", p, due)
	}
	// A request and its answer are traffic: the heartbeat moves.
	if _, _, err := r.link.Register(context.Background(), "app", "ch", "", false); err != nil {
		t.Fatal(err)
	}
	moved := r.drv.Idle()
	if !moved.Equal(r.fc.Now().Add(r.link.Stats().Heartbeat)) || !moved.After(due) {
		t.Fatalf("heartbeat due %v after traffic at %v, was %v", moved, r.fc.Now(), due)
	}
	if st := r.link.Stats(); st.Pings != 0 {
		t.Fatalf("%d pings before the first idle interval ended", st.Pings)
	}
}

// TestRetryLater checks the service's "retry later" is honoured, whether it
// comes as a close code on shutdown or as 503 + Retry-After on a refused
// upgrade, and that a network-up does not cut it short.
func TestRetryLater(t *testing.T) {
	half := func() float64 { return 0.5 }
	// The service's spread of 60 s with 0.5 gives 1 + 30 = 31 s.
	const want = 31 * time.Second

	t.Run("close code on shutdown", func(t *testing.T) {
		r := newRig(t, 0, server.Config{Rand: half, RetrySpread: time.Minute}, channel.Config{BackoffMin: time.Second})
		r.drv.Idle()
		closed := r.fc.Now()
		r.svc.Close()
		var st channel.Stats
		testenv.Eventually(t, 10*time.Second, "link waiting", func() bool {
			st = r.link.Stats()
			return st.State == channel.StateWaiting && len(r.fc.Pending()) == 1
		})
		if got := st.RetryAt.Sub(closed); got != want {
			t.Fatalf("retry in %v, want the service's %v (%s)", got, want, st.LastError)
		}
		// The network coming back does not cut the service's wait short.
		changed := r.fc.Changed()
		r.link.NetworkUp()
		select {
		case <-changed: // the wait re-armed its timer
		case <-time.After(10 * time.Second):
			t.Fatal("the link did not react to the network coming up")
		}
		if p := r.fc.Pending(); len(p) != 1 || !p[0].Equal(closed.Add(want)) {
			t.Fatalf("after network up: next attempt at %v, want %v", p, closed.Add(want))
		}
		// An explicit Reconnect does, at once: a dial without the clock
		// moving.
		dials := r.link.Stats().Wakeups.Reconnects
		r.link.Reconnect()
		testenv.Eventually(t, 10*time.Second, "a dial after Reconnect", func() bool {
			return r.link.Stats().Wakeups.Reconnects > dials
		})
	})

	t.Run("503 Retry-After when shedding", func(t *testing.T) {
		r := newRig(t, 0, server.Config{Rand: half, RetrySpread: time.Minute, MaxDevices: 1}, channel.Config{BackoffMin: time.Second})
		r.drv.Idle()
		h := newMemHandler("test-net")
		second, err := channel.New(channel.Config{Service: r.nat.URL(), Handler: h, Clock: r.fc, Rand: half, BackoffMin: time.Second,
			Logger: testenv.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); second.Run(ctx) }()
		defer func() { cancel(); <-done }()
		started := r.fc.Now()
		var st channel.Stats
		testenv.Eventually(t, 10*time.Second, "second device refused", func() bool {
			st = second.Stats()
			return st.State == channel.StateWaiting
		})
		if got := st.RetryAt.Sub(started); got != want {
			t.Fatalf("retry in %v, want %v (%s)", got, want, st.LastError)
		}
		if r.svc.ConnectedCount() != 1 {
			t.Fatalf("%d devices connected past MaxDevices 1", r.svc.ConnectedCount())
		}
	})
}

// TestNetworkUp: a link waiting out its backoff reconnects after a brief
// jitter when the network comes up; a connected link stays up on the same
// network and moves when the network is another.
func TestNetworkUp(t *testing.T) {
	t.Run("cuts the backoff short", func(t *testing.T) {
		r := newRig(t, 0, server.Config{Rand: func() float64 { return 0.5 }, RetrySpread: time.Minute},
			channel.Config{BackoffMin: 10 * time.Minute, BackoffMax: time.Hour})
		r.drv.Idle()
		r.svc.Close()
		testenv.Eventually(t, 10*time.Second, "link waiting", func() bool {
			return r.link.Stats().State == channel.StateWaiting && len(r.fc.Pending()) == 1
		})
		if p := r.fc.Pending(); !p[0].Equal(r.fc.Now().Add(5 * time.Minute)) {
			t.Fatalf("backoff until %v, want 5m from %v", p, r.fc.Now())
		}
		r.fc.Advance(40 * time.Second) // past the service's 31 s
		changed := r.fc.Changed()
		r.link.NetworkUp()
		<-changed
		if p := r.fc.Pending(); len(p) != 1 || !p[0].Equal(r.fc.Now().Add(time.Second)) {
			t.Fatalf("after network up: next attempt at %v, want the 1 s jitter from %v", p, r.fc.Now())
		}
	})
	for _, tt := range []struct {
		network string
		moves   bool
	}{{"test-net", false}, {"other-net", true}} {
		t.Run("connected, now on "+tt.network, func(t *testing.T) {
			r := newRig(t, 0, server.Config{}, channel.Config{})
			r.drv.Idle()
			r.h.mu.Lock()
			r.h.network = tt.network
			r.h.mu.Unlock()
			r.link.NetworkUp()
			if !tt.moves {
				if st := r.link.Stats(); !st.Connected || st.Reconnects != 0 {
					t.Fatalf("the link moved on the same network: %+v", st)
				}
				return
			}
			testenv.Eventually(t, 10*time.Second, "link down", func() bool { return r.link.Stats().Reconnects == 1 })
			r.fc.Advance(time.Second)
			r.drv.Idle()
			if st := r.link.Stats(); st.Network != tt.network || st.Heartbeat != channel.DefaultHeartbeat {
				t.Fatalf("on the new network: %+v", st)
			}
		})
	}
}

func (h *memHandler) identity() channel.Identity {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.id
}

// TestSeveralServices: with several comma-separated service URLs, a link
// whose service is gone moves to the next after its backoff, and keeps
// its identity there (the nodes of a cluster share the store).
func TestSeveralServices(t *testing.T) {
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	svc := testenv.Service(t, "", server.ServeConfig{Server: server.Config{Clock: fc}})
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	goneURL := "http://" + gone.Addr().String()
	gone.Close() // nothing listens there now: every dial is refused

	if _, err := channel.New(channel.Config{Service: svc.URL() + ",ftp://x", Handler: newMemHandler("n")}); err == nil {
		t.Fatal("a bad URL among good ones was accepted")
	}
	h := newMemHandler("test-net")
	link, err := channel.New(channel.Config{Service: goneURL + ", " + svc.URL(), Handler: h, Clock: fc, BackoffMin: time.Second,
		Rand: func() float64 { return 0.5 }, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); link.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testenv.Eventually(t, testTimeout, "first service refused", func() bool {
		return link.Stats().State == channel.StateWaiting && len(fc.Pending()) > 0
	})
	fc.Advance(link.Stats().RetryAt.Sub(fc.Now()))
	testenv.Eventually(t, testTimeout, "connected to the second service", func() bool { return link.Stats().Connected })
	if svc.ConnectedCount() != 1 {
		t.Fatalf("%d devices on the second service, want 1", svc.ConnectedCount())
	}
}

// TestSeveralServicesBackoffPerRound: with several service URLs the
// backoff's ceiling rises once per round of them, so that a device turned
// away by one node (a killed node's devices arriving at a loaded
// survivor) tries the others, the dead one among them, without doubling
// its wait at each; with one URL it rises at every attempt as before.
func TestSeveralServicesBackoffPerRound(t *testing.T) {
	gone := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u := "http://" + l.Addr().String()
		l.Close() // nothing listens there now: every dial is refused
		return u
	}
	ms := time.Millisecond
	for _, tt := range []struct {
		name string
		urls int
		want []time.Duration
	}{
		{"three URLs", 3, []time.Duration{500 * ms, 500 * ms, 500 * ms, time.Second, time.Second, time.Second, 2 * time.Second}},
		{"one URL", 1, []time.Duration{500 * ms, time.Second, 2 * time.Second, 4 * time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var urls []string
			for range tt.urls {
				urls = append(urls, gone())
			}
			fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			link, err := channel.New(channel.Config{Service: strings.Join(urls, ","), Handler: newMemHandler("test-net"), Clock: fc,
				BackoffMin: time.Second, BackoffMax: time.Hour, Rand: func() float64 { return 0.5 }, Logger: testenv.Logger(t)})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); link.Run(ctx) }()
			defer func() { cancel(); <-done }()
			var got []time.Duration
			for i := range tt.want {
				var st channel.Stats
				testenv.Eventually(t, testTimeout, "attempt refused", func() bool {
					st = link.Stats()
					return st.State == channel.StateWaiting && st.Reconnects == i+1 && len(fc.Pending()) > 0
				})
				d := st.RetryAt.Sub(fc.Now())
				got = append(got, d)
				fc.Advance(d)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("delays %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMaxIdleBoundsTheCeiling: a service that drops connections silent for
// its max_idle keeps the heartbeat a tenth under it, whatever the NAT
// allows.
func TestMaxIdleBoundsTheCeiling(t *testing.T) {
	r := newRig(t, 0, server.Config{MaxIdle: 20 * time.Minute}, channel.Config{})
	for beats := 0; !r.link.Stats().Learned.Settled; beats++ {
		if beats > 8 {
			t.Fatalf("not settled: %+v", r.link.Stats().Learned)
		}
		if b := r.drv.Beat(); !b.Answered {
			t.Fatalf("a heartbeat died behind a NAT that keeps flows: %+v", b)
		}
	}
	if st := r.link.Stats(); st.Heartbeat != 18*time.Minute || st.Ceiling != 18*time.Minute || !st.Learned.NextProbe.IsZero() {
		t.Fatalf("under a 20-minute max_idle: heartbeat %v, ceiling %v, next probe %v", st.Heartbeat, st.Ceiling, st.Learned.NextProbe)
	}
}
