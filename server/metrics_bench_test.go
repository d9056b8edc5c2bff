package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/wire"
)

// BenchmarkMetricsHooks measures what the metrics add to each notification
// on the hot paths: counting its answer, observing its accept-to-deliver
// latency, and the per-session ack bookkeeping.
func BenchmarkMetricsHooks(b *testing.B) {
	m := newMetrics()
	h := http.Header{}
	h.Set(mpns.HeaderTarget, mpns.TargetToast)
	received := outcome{Code: http.StatusOK, Notification: mpns.StatusReceived}
	b.Run("count_answer", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.notification(kindLabel(h), received)
		}
	})
	b.Run("count_rare_answer", func(b *testing.B) {
		rare := outcome{Code: http.StatusRequestEntityTooLarge}
		b.ReportAllocs()
		for b.Loop() {
			m.notification(kindUnknown, rare)
		}
	})
	b.Run("deliver_latency_batch_of_12", func(b *testing.B) {
		now := time.Now()
		ns := make([]wire.Notification, 12)
		for i := range ns {
			ns[i].AcceptedAt = now.Add(-time.Duration(i) * time.Millisecond).UnixMilli()
		}
		b.ReportAllocs()
		for b.Loop() {
			m.delivered(ns, now)
		}
	})
	b.Run("ack_wait", func(b *testing.B) {
		var w ackWait
		b.ReportAllocs()
		var seq uint64
		now := time.Now()
		for b.Loop() {
			seq++
			w.wrote(seq, now)
			if took, ok := w.covered(seq, now); ok {
				m.ackLatency.Observe(took.Seconds())
			}
		}
	})
}
