package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// BenchmarkAcceptHTTP measures durable accepts per second through the MPNS
// endpoint over loopback, concurrent senders, with group commit and with
// one transaction per request. The devices are away, so every accepted
// notification stays queued and nothing but the accept path is measured.
func BenchmarkAcceptHTTP(b *testing.B) {
	for _, mode := range []struct {
		name  string
		group bool
	}{{"group_commit", true}, {"tx_per_request", false}} {
		b.Run(mode.name, func(b *testing.B) {
			// Quotas and rates off: this measures the accept path, not a
			// sender being refused.
			ts := startServiceWith(b, server.Config{QueueDepth: 1 << 30,
				Limits: server.Limits{DailyQuota: -1, ChannelRate: -1, SenderRate: -1}}, sqlitestore.Options{GroupCommit: mode.group})
			var uris []string
			for i := 0; i < 16; i++ {
				d := ts.enrol()
				_, uri := d.register("bench", true, true)
				d.disconnect()
				uris = append(uris, uri)
			}
			body := (&mpns.Toast{Text1: "bench"}).XML()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
			var next atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					uri := uris[next.Add(1)%int64(len(uris))]
					req, _ := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
					req.Header.Set(mpns.HeaderTarget, "toast")
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if got := resp.Header.Get(mpns.HeaderNotificationStatus); got != mpns.StatusReceived {
						b.Error(fmt.Sprintf("status %d %s", resp.StatusCode, got))
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "accepts/s")
			b.ReportMetric(float64(b.N)/float64(max(ts.store.Commits(), 1)), "per_commit")
		})
	}
}
