package channel

import (
	"testing"
	"time"
)

// TestAdaptiveConverges runs the search against NATs of many idle timeouts:
// it must settle within a bounded number of probes, under the timeout, and
// close to it (or at the cap).
func TestAdaptiveConverges(t *testing.T) {
	tests := []struct {
		nat       time.Duration
		maxProbes int
	}{
		{nat: 90 * time.Second, maxProbes: 6},
		{nat: 3 * time.Minute, maxProbes: 6},
		{nat: 5 * time.Minute, maxProbes: 6},
		{nat: 10 * time.Minute, maxProbes: 8},
		{nat: 17 * time.Minute, maxProbes: 10},
		{nat: 30 * time.Minute, maxProbes: 8},
		{nat: 2 * time.Hour, maxProbes: 8},
	}
	for _, tt := range tests {
		t.Run(tt.nat.String(), func(t *testing.T) {
			a := newAdaptive(DefaultHeartbeat, DefaultHeartbeatFloor, DefaultHeartbeatCap, DefaultHeartbeatPrecision)
			probes := 0
			for !a.Settled {
				if probes++; probes > tt.maxProbes {
					t.Fatalf("not settled after %d probes: %+v", tt.maxProbes, a.Learned)
				}
				if a.Interval < tt.nat {
					a.survived(a.Interval)
				} else {
					a.died(a.Interval)
				}
			}
			// Just under the NAT's timeout: within the search precision
			// of it, or at the cap.
			want := min(tt.nat, DefaultHeartbeatCap)
			if a.Interval >= tt.nat || a.Interval < want-DefaultHeartbeatPrecision {
				t.Fatalf("settled at %v behind a %v NAT, want within %v under %v (%+v)", a.Interval, tt.nat, DefaultHeartbeatPrecision, want, a.Learned)
			}
			// Settled means no more changes while the NAT behaves.
			if a.survived(a.Interval) {
				t.Fatalf("a settled interval changed on survival: %+v", a.Learned)
			}
		})
	}
}

func TestAdaptiveStepsBackWhenTheNetworkChanges(t *testing.T) {
	a := newAdaptive(DefaultHeartbeat, DefaultHeartbeatFloor, DefaultHeartbeatCap, DefaultHeartbeatPrecision)
	a.load(Learned{Interval: DefaultHeartbeatCap, Good: DefaultHeartbeatCap, Settled: true})
	// The NAT now drops flows after 5 minutes.
	probes := 0
	for !a.Settled || a.Interval >= 5*time.Minute {
		if probes++; probes > 10 {
			t.Fatalf("did not re-learn: %+v", a.Learned)
		}
		if a.Interval < 5*time.Minute {
			a.survived(a.Interval)
		} else {
			a.died(a.Interval)
		}
	}
	if a.Interval < 4*time.Minute {
		t.Fatalf("re-learned %v, want close under 5m", a.Interval)
	}
}

func TestAdaptiveFloorAndCap(t *testing.T) {
	a := newAdaptive(10*time.Second, DefaultHeartbeatFloor, DefaultHeartbeatCap, DefaultHeartbeatPrecision)
	if a.Interval != DefaultHeartbeatFloor {
		t.Fatalf("start %v below the floor", a.Interval)
	}
	a.setFloor(2 * time.Minute) // the service's minimum
	if a.Interval != 2*time.Minute {
		t.Fatalf("interval %v after the service raised the floor to 2m", a.Interval)
	}
	a.died(a.Interval)
	if a.Interval != 2*time.Minute || !a.Settled {
		t.Fatalf("a death at the floor must settle at the floor: %+v", a.Learned)
	}
	a.load(Learned{Interval: 3 * time.Hour})
	if a.Interval != DefaultHeartbeatCap {
		t.Fatalf("loaded interval not capped: %v", a.Interval)
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
