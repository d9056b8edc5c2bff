package server_test

import (
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// BenchmarkIdleDevices measures what an idle connected device costs the
// service: goroutine stacks and live heap per device, after each device
// has enrolled, registered and bound a channel and gone quiet. The test's
// devices have no goroutines and tiny buffers, so the stack figure is the
// service's alone; the heap figure includes about 0.7 KiB per device of
// the test's own connection state.
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
		d.send(wire.Hello{Type: wire.TypeHello, Version: wire.Version})
		if _, ok := d.next().(*wire.Welcome); !ok {
			b.Fatal("first frame is not welcome")
		}
		d.register("app", true, true)
	}
	after := settledMemStats()
	if f, err := os.Create("/tmp/idle_live.mem"); err == nil {
		pprof.WriteHeapProfile(f)
		f.Close()
	}
	n := float64(b.N)
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/n, "stack_B/device")
	b.ReportMetric(float64(int64(after.HeapInuse)-int64(before.HeapInuse))/n, "heap_B/device")
	b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/device")
}

// settledMemStats collects garbage until goroutine stacks have shrunk to
// what they use, as they do in a long-idle process.
func settledMemStats() runtime.MemStats {
	var m runtime.MemStats
	for range 4 {
		runtime.GC()
	}
	runtime.ReadMemStats(&m)
	return m
}
