package server_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// BenchmarkHellos measures the hello path of known devices, as when a node
// takes over the devices of one that died: b.N enrolled devices, each
// with a channel, all disconnected, then all reconnecting at once over
// loopback (64 at a time), each a challenge, a hello with its proof and
// the welcome. Connections stay open, as the devices' would, so b.N is
// bounded by the open-files limit (two descriptors a device in this one
// process).
//
//	go test -run '^$' -bench Hellos -benchtime 4000x ./server
func BenchmarkHellos(b *testing.B) {
	// 64 devices of one address at a time, each dialling the next as soon
	// as it is welcomed: the bound on hellos per address would turn away
	// the few that overlap the end of another's.
	ts := startService(b, server.Config{Limits: server.Limits{MaxPendingHellosPerSource: -1}})
	url := wsURL(ts.http.URL)
	type known struct{ id, secret string }
	devs := make([]known, b.N)
	// Enrolled beforehand, their sessions ended, so that what is timed is
	// hellos only, not enrolments or the takeover of live sessions.
	parallelN(b, b.N, func(i int) {
		d := &testDevice{t: b, ts: ts}
		d.connect(0)
		d.register("app", true, false)
		devs[i] = known{d.id, d.secret}
		d.disconnect()
	})
	dialer := websocket.Dialer{ReadBufferSize: 512, WriteBufferSize: 512}
	conns := make([]*websocket.Conn, b.N)
	b.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	b.ResetTimer()
	start := time.Now()
	parallelN(b, b.N, func(i int) {
		conn, _, err := dialer.Dial(url, nil)
		if err != nil {
			b.Error(err)
			return
		}
		conns[i] = conn
		d := &testDevice{t: b, ts: ts, conn: conn}
		d.send(helloFor(b, d.next(), devs[i].id, devs[i].secret, 0))
		if w, ok := d.next().(*wire.Welcome); !ok || w.ID != devs[i].id {
			b.Errorf("device %d: no welcome", i)
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "hellos/s")
}

// parallelN runs f(0..n-1), 64 at a time.
func parallelN(b *testing.B, n int, f func(int)) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(64, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || b.Failed() {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
}
