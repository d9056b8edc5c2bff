package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/wire"
)

// expectRetryLater reads until the service closes the device's connection
// and checks it asked the device to retry after want seconds.
func (d *testDevice) expectRetryLater(want string) {
	d.t.Helper()
	d.conn.SetReadDeadline(time.Now().Add(frameWait))
	for {
		_, _, err := d.conn.ReadMessage()
		if err == nil {
			continue // a frame sent before the close
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != wire.CloseRetryLater || ce.Text != want {
			d.t.Fatalf("connection ended with %v; want close %d %q", err, wire.CloseRetryLater, want)
		}
		return
	}
}

// failingReads is a real store whose queue reads fail while failing is set,
// as a cluster's do while every NATS server restarts.
type failingReads struct {
	server.Store
	failing atomic.Bool
}

func (f *failingReads) Pending(ctx context.Context, deviceID string, after uint64) ([]store.Queued, error) {
	if f.failing.Load() {
		return nil, fmt.Errorf("teststore: queue: %w", store.ErrUnavailable)
	}
	return f.Store.Pending(ctx, deviceID, after)
}

// A session whose queue read fails asks its device to retry after a delay
// drawn within RetrySpread, like every other retry-later, not after a
// fixed 30 s that every device of the cluster would wait out together.
func TestQueueReadFailureRetryIsJittered(t *testing.T) {
	tests := []struct {
		rand float64
		want string
	}{
		{0, "1"},
		{0.5, "3"},
		{0.99, "4"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			fr := &failingReads{}
			ts := startServiceWrapped(t, server.Config{RetrySpread: 4 * time.Second, Rand: func() float64 { return tt.rand }},
				sqlitestore.Options{GroupCommit: true}, func(st server.Store) server.Store { fr.Store = st; return fr })
			d := ts.enrol()
			d.register("app", true, false)
			d.disconnect()
			fr.failing.Store(true)
			// Not connect, which waits for the session to be registered:
			// this one may end before the test looks.
			conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.http.URL, "http")+server.DevicePath, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			d.conn = conn
			d.send(helloFor(t, d.next(), d.id, d.secret, 0))
			d.expectRetryLater(tt.want)
		})
	}
}

// A node whose store stays unusable (cut off from NATS) for StoreLostAfter
// closes its devices' sessions with 4001 and a jittered delay, so they
// reconnect to a node that can serve them; one unusable for less (a NATS
// server restarting, its client moving to another) keeps them.
func TestStoreLossHandsDevicesOver(t *testing.T) {
	const lostAfter = 3 * time.Second
	gs := &gatedStore{}
	ts := startServiceWrapped(t, server.Config{StoreLostAfter: lostAfter, RetrySpread: 10 * time.Second, Rand: func() float64 { return 0.2 }},
		sqlitestore.Options{GroupCommit: true}, func(st server.Store) server.Store { gs.Store = st; return gs })
	d := ts.enrol()
	d.register("app", true, false)

	// The loop looks every lostAfter/3.
	step := lostAfter / 3
	tick := func() {
		t.Helper()
		ts.waitTimer(ts.clk.Now().Add(step))
		ts.clk.Advance(step)
	}
	what := "NATS (reconnecting)"
	gs.waiting.Store(&what)
	tick() // first seen unusable
	tick()
	gs.waiting.Store(nil)
	tick() // usable again before lostAfter: nothing happens
	d.barrier()
	if !ts.srv.Connected(d.id) {
		t.Fatal("a store unusable for less than StoreLostAfter disconnected the device")
	}

	gs.waiting.Store(&what)
	for range 3 {
		tick()
	}
	if !ts.srv.Connected(d.id) {
		t.Fatal("disconnected before StoreLostAfter")
	}
	tick() // lostAfter since first seen unusable
	d.expectRetryLater("3")
}
