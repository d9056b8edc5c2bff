package channel

import (
	"context"
	"slices"
	"time"
)

// Learned is what the link knows about one network's NAT: how long an idle
// flow has been seen to survive and to die, the interval to use, and when
// to try a longer one.
type Learned struct {
	// Interval is the heartbeat interval to use next (while a probe runs,
	// the probe's).
	Interval time.Duration
	// Good is the longest idle interval seen to survive (0: none yet);
	// Bad the shortest seen to die (0: none yet). The NAT's idle timeout
	// lies between them.
	Good, Bad time.Duration
	// Settled: the search is over and Good (or the floor) is kept, apart
	// from an upward probe now and then.
	Settled bool
	// Probe is the longer interval a settled link is trying (0: none).
	Probe time.Duration
	// Retry is an interval that died once while the search was climbing:
	// a passing radio fade looks exactly like a NAT timeout, so it is
	// tried once more before it counts as the NAT's.
	Retry time.Duration
	// Streak counts midpoints that died in a row: after two, the proven
	// interval is tried again before going lower, since a NAT that
	// changed its mind during the search makes every midpoint die.
	Streak int
	// NextProbe is when a settled link next tries a longer interval (zero:
	// never, as at the ceiling). Hold is how long the proven interval
	// holds before that probe: it doubles after each failed probe. Rung
	// picks the probe's length: 2, 1.5 or 1.25 times Good, shorter after
	// each failure.
	NextProbe time.Time
	Hold      time.Duration
	Rung      int
	// Failed are the times heartbeats went unanswered on this network
	// (each cost a reconnect) over the last day, oldest first.
	Failed []time.Time
}

// Equal reports whether l and o are the same state.
func (l Learned) Equal(o Learned) bool {
	return l.Interval == o.Interval && l.Good == o.Good && l.Bad == o.Bad && l.Settled == o.Settled &&
		l.Probe == o.Probe && l.Retry == o.Retry && l.Streak == o.Streak && l.NextProbe.Equal(o.NextProbe) && l.Hold == o.Hold &&
		l.Rung == o.Rung && slices.EqualFunc(l.Failed, o.Failed, time.Time.Equal)
}

// clone returns a copy that shares nothing with l.
func (l Learned) clone() Learned {
	l.Failed = slices.Clone(l.Failed)
	return l
}

// FailedSince counts the heartbeats that went unanswered at or after t.
func (l Learned) FailedSince(t time.Time) int {
	n := 0
	for _, f := range l.Failed {
		if !f.Before(t) {
			n++
		}
	}
	return n
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

// NetworkCeiling is implemented by a Handler that sets the heartbeat
// ceiling per network (lower on a metered or cellular one). Zero keeps
// Config.HeartbeatCeiling.
type NetworkCeiling interface {
	HeartbeatCeiling(ctx context.Context, network string) time.Duration
}

// Heartbeat policy defaults, with their reasons.
const (
	// RFC 5382 (REQ-5) asks NATs to keep an established TCP flow idle for
	// at least 2 h 4 min, and many home routers keep it far longer; six
	// minutes under that allows for a NAT that counts coarsely. Only
	// proven intervals reach it.
	DefaultHeartbeatCeiling = 118 * time.Minute
	// Carrier NATs keep idle flows 5 to 30 minutes, and a metered or
	// cellular network is where a failed probe (a reconnect) costs most:
	// there the ceiling stays at FCM's 28 minutes.
	MeteredHeartbeatCeiling = 28 * time.Minute
	// Below a minute a heartbeat costs more than it could save.
	DefaultHeartbeatFloor = time.Minute
	// The search stops once the longest surviving and the shortest dying
	// intervals are this close: closer costs more failed probes (each one
	// a reconnect) than it saves in heartbeats.
	DefaultHeartbeatPrecision = 30 * time.Second
	// A settled interval holds this long before the first upward probe,
	// and the hold doubles after each failed probe up to the maximum: a
	// NAT that became kinder is found within MaxProbeHold and one
	// proven interval, plus the climb (each success doubles at once: 37
	// minutes to the ceiling in under four hours), while one that did not
	// costs four probes a day, about a wakeup and a half together.
	DefaultProbeHold = 2 * time.Hour
	MaxProbeHold     = 6 * time.Hour
	// Failed heartbeats are counted over a day.
	failedWindow = 24 * time.Hour
	// At most this many failures are kept (a day of one a minute would be
	// 1,440; the count shown saturates instead).
	failedKept = 64
)

// heartbeatGrowth is how much a surviving interval is lengthened while no
// longer interval is known to die (B2G used 1.5).
const heartbeatGrowth = 1.5

// probeRungs are the lengths of upward probes, as multiples of the proven
// interval, tried in turn after failures. A failed probe of 2× costs a
// ping and a reconnect in the time of two heartbeats (nothing more), and
// a notification sent as its flow died waits at most about one proven
// interval, as it would for any silent drop; the shorter rungs find a NAT
// that became only a little kinder, for a fraction of a wakeup more.
var probeRungs = [...]float64{2, 1.5, 1.25}

// adaptive is the heartbeat search: B2G's adaptive ping, with a binary
// search once an interval has died, and upward probes once settled. It is
// not safe for concurrent use; the link guards it with its mutex.
type adaptive struct {
	start, floor, ceiling, precision time.Duration
	hold, maxHold                    time.Duration
	Learned
}

func newAdaptive(start, floor, ceiling, precision time.Duration) adaptive {
	a := adaptive{start: start, floor: floor, ceiling: ceiling, precision: precision,
		hold: DefaultProbeHold, maxHold: MaxProbeHold}
	a.reset()
	return a
}

func (a *adaptive) reset() {
	a.Learned = Learned{Interval: a.clamp(a.start), Hold: a.hold}
}

// load replaces the state with a remembered one, clamped to the policy. A
// probe that was running when the state was saved neither failed nor
// succeeded: the proven interval is used and the probe comes again.
func (a *adaptive) load(l Learned, now time.Time) {
	a.Learned = l.clone()
	// What is read back may be damaged: keep it within the policy.
	a.Good, a.Bad = max(a.Good, 0), max(a.Bad, 0)
	if limit := now.Add(a.maxHold); a.NextProbe.After(limit) {
		a.NextProbe = limit // never a probe put off for ever
	}
	if a.Hold <= 0 {
		a.Hold = a.hold
	}
	a.Hold = min(a.Hold, a.maxHold)
	a.Rung = max(0, a.Rung) % len(probeRungs)
	if a.Probe != 0 {
		a.Probe = 0
		a.Interval = a.Good
	}
	a.Interval = a.clamp(a.Interval)
	a.trim(now)
	a.policyChanged(now)
}

func (a *adaptive) clamp(d time.Duration) time.Duration {
	return max(a.floor, min(d, a.ceiling))
}

// setFloor raises the floor to the service's minimum heartbeat.
func (a *adaptive) setFloor(d time.Duration, now time.Time) {
	if d > a.floor {
		a.floor = min(d, a.ceiling)
		a.Interval = a.clamp(a.Interval)
		a.policyChanged(now)
	}
}

// setCeiling changes the ceiling (the network's, or the service's idle
// limit), never below the floor.
func (a *adaptive) setCeiling(d time.Duration, now time.Time) {
	d = max(d, a.floor)
	if d == a.ceiling {
		return
	}
	a.ceiling = d
	if a.Probe > d {
		a.Probe, a.Interval = 0, a.Good
	}
	a.Interval = a.clamp(a.Interval)
	a.policyChanged(now)
}

// policyChanged makes a settled state agree with the current floor and
// ceiling: one settled below a ceiling that has since risen, with nothing
// known to die, climbs on; one settled without a next probe gets one.
func (a *adaptive) policyChanged(now time.Time) {
	if !a.Settled || a.Probe != 0 {
		return
	}
	switch {
	case a.Good >= a.ceiling:
		a.Interval, a.NextProbe = a.ceiling, time.Time{}
	case a.Bad == 0 && a.Good > 0:
		a.Settled = false
		a.Interval = a.Good
	default:
		if a.Good > 0 {
			a.Interval = a.clamp(a.Good)
		}
		if a.NextProbe.IsZero() {
			a.settle(now)
		}
	}
}

// arm returns the interval to arm now. A settled link whose proven
// interval has held past NextProbe tries a longer one: the probe lasts
// until it is answered or dies.
func (a *adaptive) arm(now time.Time) (d time.Duration, probing bool) {
	if a.Settled && a.Probe == 0 && !a.NextProbe.IsZero() && !now.Before(a.NextProbe) {
		if p := a.probeTarget(); p > a.Interval {
			a.Probe, a.Interval = p, p
			return p, true
		}
		a.NextProbe = time.Time{}
	}
	return a.Interval, false
}

func (a *adaptive) probeTarget() time.Duration {
	base := max(a.Good, a.Interval)
	return a.clamp(time.Duration(float64(base) * probeRungs[a.Rung%len(probeRungs)]))
}

// settle ends the search at the current interval and schedules the next
// upward probe, if a longer interval is worth trying.
func (a *adaptive) settle(now time.Time) {
	a.Settled, a.Retry, a.Streak, a.Probe = true, 0, 0, 0
	if a.Hold <= 0 {
		a.Hold = a.hold
	}
	a.NextProbe = time.Time{}
	if a.probeTarget()-max(a.Good, a.Interval) > a.precision {
		a.NextProbe = now.Add(a.Hold)
	}
}

// trim forgets failures older than a day.
func (a *adaptive) trim(now time.Time) {
	cut := now.Add(-failedWindow)
	i := 0
	for i < len(a.Failed) && a.Failed[i].Before(cut) {
		i++
	}
	a.Failed = a.Failed[i:]
	if len(a.Failed) > failedKept {
		a.Failed = a.Failed[len(a.Failed)-failedKept:]
	}
	if len(a.Failed) == 0 {
		a.Failed = nil
	}
}

// survived records that a ping after d of idleness was answered. It
// reports whether the state changed.
func (a *adaptive) survived(d time.Duration, now time.Time) bool {
	before := a.Learned.clone()
	if a.Probe != 0 {
		if d >= a.Probe {
			// The NAT is kinder than learned: the probe is the new
			// proven interval, and the next probe (twice as long) goes
			// out at once, each failure falling back to the last proven.
			a.Good, a.Probe = d, 0
			if a.Bad != 0 && a.Bad <= a.Good {
				a.Bad = 0
			}
			a.Interval, a.Rung, a.Hold = a.clamp(a.Good), 0, a.hold
			a.settle(now)
			if !a.NextProbe.IsZero() {
				a.NextProbe = now
			}
		}
		return !a.Learned.Equal(before)
	}
	if d > a.Good {
		a.Good = d
	}
	if a.Retry != 0 && d >= a.Retry {
		a.Retry = 0 // the death was a fade, not the NAT
	}
	a.Streak = 0
	if a.Bad != 0 && a.Bad <= a.Good {
		// The NAT is more lenient than it was: search upwards again.
		a.Bad, a.Settled = 0, false
	}
	if !a.Settled {
		a.next(now)
	}
	return !a.Learned.Equal(before)
}

// died records that a ping after d of idleness went unanswered: the NAT
// dropped the flow (or a fade lost the ping or its answer). It reports
// whether the state changed.
func (a *adaptive) died(d time.Duration, now time.Time) bool {
	before := a.Learned.clone()
	a.trim(now)
	a.Failed = append(a.Failed, now)
	a.trim(now)
	switch {
	case a.Probe != 0 && d >= a.Probe:
		// A failed upward probe teaches the link that the NAT is still
		// shorter than the probe; it returns to the proven interval and
		// the next probe is shorter and later.
		if a.Bad == 0 || d < a.Bad {
			a.Bad = d
		}
		a.Probe = 0
		a.Interval = a.clamp(a.Good)
		a.Rung = (a.Rung + 1) % len(probeRungs)
		a.Hold = min(2*a.Hold, a.maxHold)
		a.settle(now)
	case d <= a.Good:
		// What survived before dies now: the network changed its mind
		// (or a fade hit a proven interval). Back to a short interval at
		// once, and climb again under what died.
		a.Good, a.Bad, a.Probe, a.Retry, a.Streak, a.Settled = 0, d, 0, 0, 0, false
		a.Rung, a.Hold, a.NextProbe = 0, a.hold, time.Time{}
		a.next(now)
	case a.Retry != d && !a.bisecting():
		// A climbing step died: once may be a fade, so try it again
		// before believing it.
		a.Retry, a.Settled = d, false
		a.Interval = a.clamp(d)
	default:
		if a.bisecting() {
			a.Streak++
		}
		a.Retry = 0
		if a.Bad == 0 || d < a.Bad {
			a.Bad = d
		}
		a.Settled = false
		a.next(now)
	}
	return !a.Learned.Equal(before)
}

// bisecting reports whether the interval being tested is a midpoint
// between a survivor and a death, not a climbing step: a death there is
// believed at once, since the one that bounds it from above was checked.
func (a *adaptive) bisecting() bool {
	return a.Good > 0 && a.Bad != 0 && a.grow() >= a.Bad
}

func (a *adaptive) grow() time.Duration {
	return time.Duration(float64(a.Good) * heartbeatGrowth)
}

// next picks the interval to try after an outcome while the search runs.
func (a *adaptive) next(now time.Time) {
	switch {
	case a.Good >= a.ceiling:
		a.Interval = a.ceiling
		a.settle(now)
	case a.Good == 0 && a.Bad == 0:
		a.Interval = a.clamp(a.start)
	case a.Good == 0:
		// Nothing known to survive: step back (B2G's halving), to the
		// start at most, which nearly every NAT keeps.
		a.Interval = a.clamp(min(a.start, a.Bad/2))
		if a.Interval >= a.Bad {
			a.settle(now) // already at the floor; nothing shorter to try
		}
	case a.Bad != 0 && a.Bad-a.Good <= a.precision:
		a.Interval = a.clamp(a.Good)
		a.settle(now)
	case a.Bad == 0 || a.grow() < a.Bad:
		a.Interval = a.clamp(a.grow())
	case a.Streak >= 2:
		a.Interval, a.Streak = a.clamp(a.Good), 0
	default:
		a.Interval = a.clamp((a.Good + a.Bad) / 2)
	}
}
