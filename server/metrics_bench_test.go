package server

import (
	"net/http"
	"testing"
	"time"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server/store"
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
		qs := make([]store.Queued, 12)
		for i := range qs {
			qs[i].AcceptedAt = now.Add(-time.Duration(i) * time.Millisecond)
		}
		b.ReportAllocs()
		for b.Loop() {
			m.deliveredAt(qs, now)
		}
	})
	b.Run("ack_wait", func(b *testing.B) {
		srv := &Server{metrics: m, cfg: Config{Clock: clock.Real{}}}
		sess := &session{srv: srv}
		b.ReportAllocs()
		var seq uint64
		for b.Loop() {
			seq++
			sess.wroteLocked(seq, time.Time{})
			sess.ackedLocked(seq)
		}
	})
}
