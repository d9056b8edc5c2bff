package channel_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/server"
)

func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdleHour measures what an idle device costs per hour once its
// heartbeat has settled behind a NAT: wakeups, bytes each way through the
// NAT (websocket payload, without TCP/IP headers), and CPU time of the
// whole process (device, NAT and service together: an upper bound for the
// device). It also reports how long a dead link takes to notice. Upward
// probes run as they would (BenchmarkNATScenarios has their figures); a
// failed one's reconnect counts as a wakeup.
func BenchmarkIdleHour(b *testing.B) {
	for _, nat := range []time.Duration{30 * time.Minute, 5 * time.Minute} {
		b.Run("nat="+nat.String(), func(b *testing.B) {
			r := newRig(b, nat, server.Config{}, channel.Config{})
			for !r.link.Stats().Learned.Settled {
				r.drv.Beat()
			}
			r.drv.Idle()
			const hours = 24
			b.ResetTimer()
			var wakes, up, down float64
			var cpu time.Duration
			for range b.N {
				st, ns, c0 := r.link.Stats(), r.nat.Stats(), cpuTime(b)
				start := r.fc.Now()
				for r.fc.Now().Sub(start) < hours*time.Hour {
					r.drv.Beat()
				}
				elapsed := r.fc.Now().Sub(start).Hours()
				st2, ns2 := r.link.Stats(), r.nat.Stats()
				cpu += time.Duration(float64(cpuTime(b)-c0) / elapsed)
				wakes += float64(st2.Pings-st.Pings+st2.Reconnects-st.Reconnects) / elapsed
				up += float64(ns2.Up-ns.Up) / elapsed
				down += float64(ns2.Down-ns.Down) / elapsed
			}
			n := float64(b.N)
			b.ReportMetric(wakes/n, "wakeups/h")
			b.ReportMetric(up/n, "B-up/h")
			b.ReportMetric(down/n, "B-down/h")
			b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/h")
			// The proven interval (the one in use may be a probe).
			proven := r.link.Stats().Learned.Good
			b.ReportMetric(proven.Seconds(), "interval-s")
			// Worst case to notice a dead link: the flow dies just after
			// traffic, the next heartbeat is a full interval later, and
			// its answer is awaited for the timeout.
			b.ReportMetric((proven + testTimeout).Seconds(), "notice-s")
		})
	}
}
