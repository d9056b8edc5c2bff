package sqlitestore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// BenchmarkClosedLoop is the store's part of heraldbench's closed loop:
// senders (1 or 32 per GOMAXPROCS) each enqueueing for one of 1,000 devices and waiting for the
// commit, and each notification acknowledged lazily, as a session does
// once its device has applied it; named, every notification carries a
// message id, as an MPNS sender's X-MessageID. Besides the rate it
// reports the process's CPU per notification (user and system, so the
// log's writes count), which depends less than the rate on what else the
// machine runs.
func BenchmarkClosedLoop(b *testing.B) {
	for _, c := range []struct {
		named bool
		per   int
	}{{false, 32}, {true, 32}, {true, 1}} {
		named := c.named
		b.Run(fmt.Sprintf("named=%v/senders=%dxGOMAXPROCS", named, c.per), func(b *testing.B) {
			s := openService(b, true)
			const devices = 1000
			for i := range devices {
				addDevice(b, s, fmt.Sprint("d", i))
			}
			var next atomic.Int64
			before := s.Commits()
			b.SetParallelism(c.per)
			cpu0 := cpuTime()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					dev := fmt.Sprint("d", (i*7919)%devices)
					q := sqlitestore.Queued{DeviceID: dev, ChannelID: "ch-" + dev, Kind: "raw", Class: 3, Body: []byte("benchmark body"),
						AcceptedAt: t0, DueAt: t0}
					if named {
						q.MessageID = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
					}
					q, err := s.Enqueue(context.Background(), q, sqlitestore.EnqueueOptions{})
					if err != nil {
						b.Error(err)
						return
					}
					s.AckLater(dev, q.Seq)
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "accepts/s")
			b.ReportMetric(float64(b.N)/float64(max(s.Commits()-before, 1)), "per_commit")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
