package channel

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// natModel runs the search against a NAT on a model clock: each arm waits
// its interval; a ping at or past the NAT's timeout (or one lost) dies and
// costs the heartbeat timeout and a half-second reconnect.
type natModel struct {
	a    adaptive
	now  time.Time
	nat  func(now time.Time) time.Duration
	lose func(n int) bool // is the n-th ping lost?
	// counted
	pings, deaths int
}

func newModel(nat time.Duration) *natModel {
	return &natModel{a: newAdaptive(DefaultHeartbeat, DefaultHeartbeatFloor, DefaultHeartbeatCeiling, DefaultHeartbeatPrecision),
		now: t0, nat: func(time.Time) time.Duration { return nat }}
}

// beat runs one heartbeat and reports the idle time it tested and whether
// it was answered.
func (m *natModel) beat() (time.Duration, bool) {
	d, _ := m.a.arm(m.now)
	m.now = m.now.Add(d)
	m.pings++
	if d < m.nat(m.now) && (m.lose == nil || !m.lose(m.pings)) {
		m.a.survived(d, m.now)
		return d, true
	}
	m.deaths++
	m.now = m.now.Add(DefaultHeartbeatTimeout)
	m.a.died(d, m.now)
	m.now = m.now.Add(500 * time.Millisecond)
	return d, false
}

// TestAdaptiveConverges runs the search against NATs of many idle timeouts:
// it must settle within a bounded number of probes, under the timeout, and
// close to it (or at the ceiling).
func TestAdaptiveConverges(t *testing.T) {
	tests := []struct {
		nat       time.Duration
		maxProbes int
	}{
		{nat: 90 * time.Second, maxProbes: 10},
		{nat: 3 * time.Minute, maxProbes: 8},
		{nat: 5 * time.Minute, maxProbes: 6},
		{nat: 10 * time.Minute, maxProbes: 10},
		{nat: 17 * time.Minute, maxProbes: 11},
		{nat: 30 * time.Minute, maxProbes: 12},
		{nat: 2 * time.Hour, maxProbes: 11},
		{nat: 5 * time.Hour, maxProbes: 11},
	}
	for _, tt := range tests {
		t.Run(tt.nat.String(), func(t *testing.T) {
			m := newModel(tt.nat)
			for !m.a.Settled {
				if m.pings >= tt.maxProbes {
					t.Fatalf("not settled after %d probes: %+v", tt.maxProbes, m.a.Learned)
				}
				m.beat()
			}
			// Just under the NAT's timeout: within the search precision
			// of it, or at the ceiling.
			want := min(tt.nat, DefaultHeartbeatCeiling)
			if a := m.a; a.Interval >= tt.nat || a.Interval < want-DefaultHeartbeatPrecision {
				t.Fatalf("settled at %v behind a %v NAT, want within %v under %v (%+v)", a.Interval, tt.nat, DefaultHeartbeatPrecision, want, a.Learned)
			}
			// Settled means no more changes while the NAT behaves, until
			// the next upward probe.
			if m.a.survived(m.a.Interval, m.now) {
				t.Fatalf("a settled interval changed on survival: %+v", m.a.Learned)
			}
			t.Logf("%v: settled at %v after %d probes (%d dead) in %v", tt.nat, m.a.Interval, m.pings, m.deaths, m.now.Sub(t0))
		})
	}
}

func TestAdaptiveStepsBackWhenTheNetworkChanges(t *testing.T) {
	m := newModel(5 * time.Minute)
	m.a.load(Learned{Interval: DefaultHeartbeatCeiling, Good: DefaultHeartbeatCeiling, Settled: true}, m.now)
	// The NAT now drops flows after 5 minutes: the proven interval dies,
	// and the very next one is short enough to work.
	if d, ok := m.beat(); ok || d != DefaultHeartbeatCeiling {
		t.Fatalf("first beat %v answered %v", d, ok)
	}
	if d, ok := m.beat(); !ok || d != DefaultHeartbeat {
		t.Fatalf("after the death: %v answered %v, want %v answered", d, ok, DefaultHeartbeat)
	}
	for !m.a.Settled {
		if m.pings > 10 {
			t.Fatalf("did not re-learn: %+v", m.a.Learned)
		}
		m.beat()
	}
	if m.a.Interval < 4*time.Minute || m.a.Interval >= 5*time.Minute {
		t.Fatalf("re-learned %v, want close under 5m", m.a.Interval)
	}
}

func TestAdaptiveFloorAndCeiling(t *testing.T) {
	a := newAdaptive(10*time.Second, DefaultHeartbeatFloor, DefaultHeartbeatCeiling, DefaultHeartbeatPrecision)
	if a.Interval != DefaultHeartbeatFloor {
		t.Fatalf("start %v below the floor", a.Interval)
	}
	a.setFloor(2*time.Minute, t0) // the service's minimum
	if a.Interval != 2*time.Minute {
		t.Fatalf("interval %v after the service raised the floor to 2m", a.Interval)
	}
	a.died(a.Interval, t0) // once may be a fade
	a.died(a.Interval, t0)
	if a.Interval != 2*time.Minute || !a.Settled {
		t.Fatalf("a death at the floor must settle at the floor: %+v", a.Learned)
	}
	a.load(Learned{Interval: 3 * time.Hour}, t0)
	if a.Interval != DefaultHeartbeatCeiling {
		t.Fatalf("loaded interval not capped: %v", a.Interval)
	}
	// A ceiling lowered (a metered network, a service's max_idle) clamps
	// a settled interval at once and keeps what was proven.
	a.load(Learned{Interval: 100 * time.Minute, Good: 100 * time.Minute, Bad: 101 * time.Minute, Settled: true, NextProbe: t0.Add(time.Hour)}, t0)
	a.setCeiling(MeteredHeartbeatCeiling, t0)
	if a.Interval != MeteredHeartbeatCeiling || !a.Settled || !a.NextProbe.IsZero() || a.Good != 100*time.Minute {
		t.Fatalf("under a 28m ceiling: %+v", a.Learned)
	}
	if d, probing := a.arm(t0.Add(10 * time.Hour)); d != MeteredHeartbeatCeiling || probing {
		t.Fatalf("at the ceiling armed %v probing %v", d, probing)
	}
	// Raised again: the proven interval is back.
	a.setCeiling(DefaultHeartbeatCeiling, t0)
	if a.Interval != 100*time.Minute || !a.Settled || a.NextProbe.IsZero() {
		t.Fatalf("ceiling raised again: %+v", a.Learned)
	}
}

// TestAdaptiveLoadsTheOldCap: a network settled at the old fixed 28-minute
// cap with nothing dead climbs on under the new ceiling.
func TestAdaptiveLoadsTheOldCap(t *testing.T) {
	m := newModel(2 * time.Hour)
	m.a.load(Learned{Interval: 28 * time.Minute, Good: 28 * time.Minute, Settled: true}, m.now)
	if m.a.Settled {
		t.Fatalf("still settled under a higher ceiling: %+v", m.a.Learned)
	}
	// 28, 42, 63, 94.5 minutes, then the ceiling.
	for range 5 {
		if _, ok := m.beat(); !ok {
			t.Fatalf("a heartbeat died behind a 2h NAT: %+v", m.a.Learned)
		}
	}
	if !m.a.Settled || m.a.Interval != DefaultHeartbeatCeiling {
		t.Fatalf("after 5 beats: %+v", m.a.Learned)
	}
}

// TestAdaptiveProbesUpward: a settled link tries longer intervals after it
// has held; a failed probe returns to the proven interval (not the start),
// and the next probe is shorter and later; a probe that survives climbs.
func TestAdaptiveProbesUpward(t *testing.T) {
	m := newModel(30 * time.Minute)
	for !m.a.Settled {
		m.beat()
	}
	proven, settledAt := m.a.Interval, m.a.NextProbe.Add(-DefaultProbeHold)
	if settledAt.After(m.now) || settledAt.Before(m.now.Add(-time.Second)) {
		t.Fatalf("settled by %v, next probe %v, want %v after settling", m.now, m.a.NextProbe, DefaultProbeHold)
	}
	// Before the hold ends nothing changes.
	if d, probing := m.a.arm(settledAt.Add(DefaultProbeHold - time.Second)); d != proven || probing {
		t.Fatalf("armed %v (probe %v) before the hold ended", d, probing)
	}
	wantProbes := []struct {
		factor float64
		hold   time.Duration
	}{{2, 4 * time.Hour}, {1.5, 6 * time.Hour}, {1.25, 6 * time.Hour}, {2, 6 * time.Hour}}
	for i, w := range wantProbes {
		m.now = m.a.NextProbe
		d, probing := m.a.arm(m.now)
		if want := time.Duration(float64(proven) * w.factor); !probing || d != want {
			t.Fatalf("probe %d: armed %v (probing %v), want %v", i, d, probing, want)
		}
		m.now = m.now.Add(d)
		m.a.died(d, m.now)
		if m.a.Interval != proven || !m.a.Settled || m.a.Good != proven || m.a.Hold != w.hold || m.a.NextProbe != m.now.Add(w.hold) {
			t.Fatalf("after failed probe %d: %+v, want back at %v, next in %v", i, m.a.Learned, proven, w.hold)
		}
	}
	// The four probes came 2, 6, 12 and 18 hours after settling; two of
	// the search's three deaths before them are within the day too.
	if got := m.a.FailedSince(settledAt.Add(time.Nanosecond)); got != 4 || len(m.a.Failed) != 6 {
		t.Fatalf("%d failures since settling, want the 4 probes: %v", got, m.a.Failed)
	}
	// The NAT became kinder: the next probe survives, and the link climbs
	// to the ceiling through proven intervals, doubling at once.
	m.nat = func(time.Time) time.Duration { return 3 * time.Hour }
	m.now = m.a.NextProbe
	climbed := []time.Duration{}
	for len(climbed) == 0 || m.a.Probe != 0 || !m.a.NextProbe.IsZero() {
		d, ok := m.beat()
		if !ok {
			t.Fatalf("a beat died behind a 3h NAT: %v", d)
		}
		climbed = append(climbed, d)
		if len(climbed) > 5 {
			t.Fatalf("not at the ceiling after %v", climbed)
		}
	}
	// After four failures the rung is back at 1.5×.
	first := time.Duration(float64(proven) * 1.5)
	if want := []time.Duration{first, 2 * first, DefaultHeartbeatCeiling}; !slices.Equal(climbed, want) ||
		m.a.Interval != DefaultHeartbeatCeiling || !m.a.Settled || m.a.Hold != DefaultProbeHold {
		t.Fatalf("climbed %v, want %v: %+v", climbed, want, m.a.Learned)
	}
}

// TestAdaptiveFadeIsNotTheNAT loses each heartbeat in turn (one lost
// pong, as a passing radio fade) while the link learns a 30-minute NAT and
// for a day after: it never settles below 20 minutes. (Two lost in a row
// are taken for the NAT until the next upward probe.)
func TestAdaptiveFadeIsNotTheNAT(t *testing.T) {
	for _, lost := range [][]int{{1}, {2}, {3}, {4}, {5}, {6}, {7}, {8}, {9}, {10}, {11}, {12}, {13}, {14}, {20}, {30}, {3, 20}, {7, 40}} {
		m := newModel(30 * time.Minute)
		m.lose = func(n int) bool { return slices.Contains(lost, n) }
		low := time.Duration(1 << 62)
		for m.now.Sub(t0) < 24*time.Hour {
			m.beat()
			if m.a.Settled {
				low = min(low, m.a.Interval)
			}
		}
		if low < 20*time.Minute {
			t.Errorf("pings %v lost: settled as low as %v", lost, low)
		}
	}
}

// TestAdaptiveStreakReprovesGood: a NAT that shortens while the search
// bisects does not keep the link bisecting down from a stale survivor.
func TestAdaptiveStreakReprovesGood(t *testing.T) {
	a := newAdaptive(DefaultHeartbeat, DefaultHeartbeatFloor, DefaultHeartbeatCeiling, DefaultHeartbeatPrecision)
	a.load(Learned{Interval: 110 * time.Minute, Good: 100 * time.Minute, Bad: 120 * time.Minute}, t0)
	a.died(110*time.Minute, t0)
	a.died(a.Interval, t0)
	if a.Interval != 100*time.Minute {
		t.Fatalf("after two dead midpoints: %+v, want the survivor tried again", a.Learned)
	}
	a.died(a.Interval, t0)
	if a.Interval != DefaultHeartbeat || a.Good != 0 {
		t.Fatalf("the survivor died too: %+v, want back at the start", a.Learned)
	}
}

// TestAdaptiveFailedKeepsADay bounds the failures remembered.
func TestAdaptiveFailedKeepsADay(t *testing.T) {
	a := newAdaptive(DefaultHeartbeat, DefaultHeartbeatFloor, DefaultHeartbeatCeiling, DefaultHeartbeatPrecision)
	now := t0
	for range 200 {
		now = now.Add(time.Minute)
		a.died(a.Interval, now)
	}
	if len(a.Failed) != failedKept {
		t.Fatalf("%d failures kept, want %d", len(a.Failed), failedKept)
	}
	now = now.Add(25 * time.Hour)
	a.survived(a.Interval, now)
	a.died(2*time.Hour, now)
	if a.FailedSince(now.Add(-24*time.Hour)) != 1 || len(a.Failed) != 1 {
		t.Fatalf("a day later: %v", a.Failed)
	}
}

func TestBackoff(t *testing.T) {
	t.Run("bounded and jittered", func(t *testing.T) {
		b := Backoff{Min: time.Second, Max: time.Minute}
		seen := map[time.Duration]bool{}
		for i := range 40 {
			d := b.Next()
			ceiling := time.Minute
			if i < 6 {
				ceiling = time.Second << i
			}
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", i, d, ceiling)
			}
			seen[d] = true
		}
		if len(seen) < 35 {
			t.Fatalf("only %d distinct delays in 40: not jittered", len(seen))
		}
	})
	t.Run("sequence with a fixed source", func(t *testing.T) {
		b := Backoff{Min: time.Second, Max: 10 * time.Second, Rand: func() float64 { return 0.5 }}
		want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
		for i, w := range want {
			if got := b.Next(); got != w {
				t.Fatalf("attempt %d: %v, want %v", i, got, w)
			}
		}
		b.Reset()
		if got := b.Next(); got != 500*time.Millisecond {
			t.Fatalf("after Reset: %v, want 500ms", got)
		}
	})
	t.Run("huge attempt counts stay capped", func(t *testing.T) {
		b := Backoff{Min: time.Hour, Max: 2 * time.Hour, Rand: func() float64 { return 0.999 }}
		for range 100 {
			if d := b.Next(); d > 2*time.Hour || d < 0 {
				t.Fatalf("delay %v", d)
			}
		}
	})
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"30", 30 * time.Second}, {"-5", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(timeFormatHTTP), 90 * time.Second},
		{now.Add(-time.Minute).Format(timeFormatHTTP), 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

const timeFormatHTTP = "Mon, 02 Jan 2006 15:04:05 GMT"

func TestWakeLogSlidesOverAnHour(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var w wakeLog
	w.add(start, wakeHeartbeat)
	w.add(start.Add(10*time.Minute), wakeAck)
	w.add(start.Add(59*time.Minute), wakeReconnect)
	if got := w.lastHour(start.Add(59 * time.Minute)); got != (Wakeups{Heartbeats: 1, Reconnects: 1, Acks: 1}) {
		t.Fatalf("at 59m: %+v", got)
	}
	if got := w.lastHour(start.Add(65 * time.Minute)); got != (Wakeups{Reconnects: 1, Acks: 1}) {
		t.Fatalf("at 65m: %+v", got)
	}
	// A bucket reused an hour later starts from zero.
	w.add(start.Add(120*time.Minute), wakeHeartbeat)
	if got := w.lastHour(start.Add(120 * time.Minute)); got != (Wakeups{Heartbeats: 1}) {
		t.Fatalf("at 120m: %+v", got)
	}
}

// TestAdaptiveLoadsDamage: a remembered state read back damaged (negative
// bounds, a probe put off for years, an absurd hold or rung) is brought
// within the policy, so the link still probes and never panics.
func TestAdaptiveLoadsDamage(t *testing.T) {
	a := newAdaptive(DefaultHeartbeat, DefaultHeartbeatFloor, DefaultHeartbeatCeiling, DefaultHeartbeatPrecision)
	a.load(Learned{Interval: 20 * time.Minute, Good: 20 * time.Minute, Bad: -time.Hour, Settled: true,
		NextProbe: t0.AddDate(50, 0, 0), Hold: 1 << 62, Rung: -7}, t0)
	if a.Bad != 0 || a.Hold != MaxProbeHold || a.Rung < 0 || a.Rung >= len(probeRungs) {
		t.Fatalf("loaded %+v", a.Learned)
	}
	// Bad was damaged to nothing: the search climbs on (nothing known to
	// die), and once settled again it probes within the hold.
	if a.Settled {
		t.Fatalf("settled with nothing known to die below the ceiling: %+v", a.Learned)
	}
	a.load(Learned{Interval: 20 * time.Minute, Good: 20 * time.Minute, Bad: 21 * time.Minute, Settled: true, NextProbe: t0.AddDate(50, 0, 0)}, t0)
	if !a.NextProbe.Equal(t0.Add(MaxProbeHold)) {
		t.Fatalf("a probe put off for 50 years: next at %v", a.NextProbe)
	}
}
