package server_test

import (
	"io"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// BenchmarkIdleDevices measures what an idle connected device costs the
// service: goroutine stacks and live heap per device, after each device
// has enrolled, registered and bound a channel, sent a heartbeat ping and
// gone quiet. The test's
// devices have no goroutines and tiny buffers, so the stack figure is the
// service's alone; the heap figure (live bytes after a collection, without
// the collector's headroom) includes about 1.5 KiB per device of the
// test's own connection state.
//
//	go test -run '^$' -bench IdleDevices -benchtime 2000x ./server
func BenchmarkIdleDevices(b *testing.B) {
	ts := startService(b, server.Config{})
	dialer := websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256}
	url := "ws" + strings.TrimPrefix(ts.http.URL, "http") + server.DevicePath
	before := settledMemStats()
	for i := 0; i < b.N; i++ {
		conn, _, err := dialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		d := &testDevice{t: b, ts: ts, conn: conn}
		d.send(helloFor(b, d.next(), "", "", 0))
		if _, ok := d.next().(*wire.Welcome); !ok {
			b.Fatal("first frame is not welcome")
		}
		d.register("app", true, true)
		// Its heartbeat: a device's last frame before a long quiet is
		// most often a ping.
		pingPong(b, conn)
	}
	after := settledMemStats()
	n := float64(b.N)
	b.ReportMetric(float64(after.stack-before.stack)/n, "stack_B/device")
	b.ReportMetric(float64(after.heap-before.heap)/n, "heap_B/device")
	b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/device")
}

type memSample struct{ stack, heap int64 }

// settledMemStats collects garbage until goroutine stacks have shrunk to
// what they use, as they do in a long-idle process, and returns the bytes
// in goroutine stacks and live on the heap.
func settledMemStats() memSample {
	for range 4 {
		runtime.GC()
	}
	m := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(m)
	return memSample{stack: int64(m[0].Value.Uint64()), heap: int64(m[1].Value.Uint64())}
}

// pingPong sends a ping and reads the pong off the socket itself, so
// that the service has answered it before the test goes on.
func pingPong(b *testing.B, conn *websocket.Conn) {
	b.Helper()
	if err := conn.WriteControl(websocket.PingMessage, []byte("hb"), time.Now().Add(frameWait)); err != nil {
		b.Fatal(err)
	}
	conn.NetConn().SetReadDeadline(time.Now().Add(frameWait))
	var pong [4]byte
	if _, err := io.ReadFull(conn.NetConn(), pong[:]); err != nil {
		b.Fatal(err)
	}
	if pong != [4]byte{0x8a, 2, 'h', 'b'} {
		b.Fatalf("answer to a ping: %x", pong)
	}
}
