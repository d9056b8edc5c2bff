package channel

import (
	"context"
	"time"
)

// Learned is what the link knows about one network's NAT: how long an idle
// flow has been seen to survive and to die, and the interval to use.
type Learned struct {
	// Interval is the heartbeat interval to use next.
	Interval time.Duration
	// Good is the longest idle interval seen to survive (0: none yet);
	// Bad the shortest seen to die (0: none yet). The NAT's idle timeout
	// lies between them.
	Good, Bad time.Duration
	// Settled: the search is over and Interval is kept.
	Settled bool
}

// NetworkMemory is implemented by a Handler that remembers, per network,
// what the link learned about the network's idle timeout, so that a known
// network starts at its value after a restart. The link works without it,
// learning afresh on every start.
type NetworkMemory interface {
	// Network names the network the device is on now (e.g. default route
	// interface, gateway address and gateway hardware address).
	Network(ctx context.Context) (string, error)
	// LoadLearned returns what was learned on network; ok is false for a
	// network never seen.
	LoadLearned(ctx context.Context, network string) (l Learned, ok bool, err error)
	SaveLearned(ctx context.Context, network string, l Learned) error
}

// Heartbeat policy defaults, with their reasons.
const (
	// Most carrier NATs keep an idle TCP flow 5 minutes or longer (the
	// shortest reported are about 5); FCM uses 28 minutes on mobile
	// because some keep it 30. Past 28 minutes a heartbeat saves little.
	DefaultHeartbeatCap = 28 * time.Minute
	// Below a minute a heartbeat costs more than it could save.
	DefaultHeartbeatFloor = time.Minute
	// The search stops once the longest surviving and the shortest dying
	// intervals are this close: closer costs more failed probes (each one
	// a reconnect) than it saves in heartbeats.
	DefaultHeartbeatPrecision = 30 * time.Second
)

// heartbeatGrowth is how much a surviving interval is lengthened while no
// interval has died yet (B2G used 1.5).
const heartbeatGrowth = 1.5

// adaptive is the heartbeat search: B2G's adaptive ping, with a binary
// search once an interval has died. It is not safe for concurrent use; the
// link guards it with its mutex.
type adaptive struct {
	start, floor, cap, precision time.Duration
	Learned
}

func newAdaptive(start, floor, cap, precision time.Duration) adaptive {
	a := adaptive{start: start, floor: floor, cap: cap, precision: precision}
	a.reset()
	return a
}

func (a *adaptive) reset() {
	a.Learned = Learned{Interval: a.clamp(a.start)}
}

// load replaces the state with a remembered one, clamped to the policy.
func (a *adaptive) load(l Learned) {
	a.Learned = l
	a.Interval = a.clamp(l.Interval)
}

func (a *adaptive) clamp(d time.Duration) time.Duration {
	return max(a.floor, min(d, a.cap))
}

// setFloor raises the floor to the service's minimum heartbeat.
func (a *adaptive) setFloor(d time.Duration) {
	if d > a.floor {
		a.floor = min(d, a.cap)
		a.Interval = a.clamp(a.Interval)
	}
}

// survived records that a ping after d of idleness was answered. It
// reports whether the state changed.
func (a *adaptive) survived(d time.Duration) bool {
	before := a.Learned
	if d > a.Good {
		a.Good = d
	}
	if a.Bad != 0 && a.Bad <= a.Good {
		// The NAT is more lenient than it was: search upwards again.
		a.Bad, a.Settled = 0, false
	}
	if !a.Settled {
		a.next()
	}
	return a.Learned != before
}

// died records that a ping after d of idleness went unanswered: the NAT
// dropped the flow. It reports whether the state changed.
func (a *adaptive) died(d time.Duration) bool {
	before := a.Learned
	if a.Bad == 0 || d < a.Bad {
		a.Bad = d
	}
	if a.Good >= a.Bad {
		// What survived before dies now: the network changed its mind,
		// so what was learned no longer holds.
		a.Good = 0
	}
	a.Settled = false
	a.next()
	return a.Learned != before
}

func (a *adaptive) next() {
	switch {
	case a.Bad == 0 && a.Good >= a.cap:
		a.Interval, a.Settled = a.cap, true
	case a.Bad == 0:
		a.Interval = a.clamp(time.Duration(float64(max(a.Good, a.Interval)) * heartbeatGrowth))
	case a.Good == 0:
		// Nothing known to survive: halve (B2G's step back).
		a.Interval = a.clamp(a.Bad / 2)
		if a.Interval >= a.Bad {
			a.Settled = true // already at the floor; nothing shorter to try
		}
	case a.Bad-a.Good <= a.precision:
		a.Interval, a.Settled = a.clamp(a.Good), true
	default:
		a.Interval = a.clamp((a.Good + a.Bad) / 2)
	}
}
