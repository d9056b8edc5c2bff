package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/wire"
)

// connectSaying (re)connects the device with a hello that says its
// heartbeat, in seconds.
func (d *testDevice) connectSaying(lastSeq uint64, heartbeat int) {
	d.t.Helper()
	url := "ws" + strings.TrimPrefix(d.ts.http.URL, "http") + server.DevicePath
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		d.t.Fatalf("dial: %v", err)
	}
	d.conn = conn
	d.t.Cleanup(func() { conn.Close() })
	h := helloFor(d.t, d.next(), d.id, d.secret, lastSeq)
	h.Heartbeat = heartbeat
	d.send(h)
	w, ok := d.next().(*wire.Welcome)
	if !ok {
		d.t.Fatal("first frame is not welcome")
	}
	if d.id == "" {
		d.id, d.secret = w.ID, w.Secret
	}
	testenv.Eventually(d.t, frameWait, "session registered", func() bool { return d.ts.srv.Connected(d.id) })
}

// A device whose link died silently reads nothing and acknowledges
// nothing. Once what the service wrote has stayed unacknowledged past the
// device's heartbeat (and a grace for its pong and for applying), the
// service stops counting it connected: senders are told TempDisconnected,
// and everything, what was written included, is kept for its return.
func TestUnacknowledgedEndsSession(t *testing.T) {
	const grace = 30 * time.Second
	for _, tc := range []struct {
		name      string
		heartbeat int // what the hello says, in seconds
		bound     time.Duration
	}{
		{"heartbeat not said", 0, 4*time.Minute + grace},
		{"heartbeat said", 600, 10*time.Minute + grace},
		{"heartbeat below the floor", 5, time.Minute + grace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startService(t, server.Config{})
			d := &testDevice{t: t, ts: ts}
			d.connectSaying(0, tc.heartbeat)
			_, uri := d.register("app", true, false)

			wantStatus(t, post(t, uri, mpns.KindToast, "", "a", toastBody("a")), 200, "Received", "Connected")
			if got := d.expectNotify(); len(got) != 1 {
				t.Fatalf("got %v", seqs(got))
			}
			// Written at t0: the writer waits for the ack until the bound.
			ts.waitTimer(t0.Add(tc.bound))
			ts.clk.Advance(tc.bound - time.Second)
			wantStatus(t, post(t, uri, mpns.KindToast, "", "b", toastBody("b")), 200, "Received", "Connected")
			if got := d.expectNotify(); len(got) != 1 {
				t.Fatalf("got %v", seqs(got))
			}
			if !ts.srv.Connected(d.id) {
				t.Fatal("dropped before the bound")
			}

			// The second write did not move the bound: the first is still
			// unacknowledged.
			ts.clk.Advance(time.Second)
			testenv.Eventually(t, frameWait, "session ended", func() bool { return !ts.srv.Connected(d.id) })
			if code := closeCode(t, d.conn); code != websocket.CloseGoingAway {
				t.Fatalf("closed with %d, want 1001", code)
			}
			wantStatus(t, post(t, uri, mpns.KindToast, "", "c", toastBody("c")), 200, "Received", "TempDisconnected")
			if got := testenv.Scrape(t, ts.http.URL+server.MetricsPath).Value("herald_service_unacknowledged_disconnects_total"); got != 1 {
				t.Fatalf("unacknowledged disconnects %v, want 1", got)
			}

			d.connect(0)
			got := d.collect(3)
			if !slices.Equal(messageIDs(got), []string{"a", "b", "c"}) {
				t.Fatalf("after reconnecting got %v", messageIDs(got))
			}
			d.ack(got[2].Seq)
			waitQueueEmpty(t, ts, d.id)
		})
	}
}

// An acknowledgement within the bound keeps the session, however long it
// stays idle afterwards, and one that makes progress restarts the bound.
func TestAcknowledgedKeepsSession(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("app", true, false)
	bound := 4*time.Minute + 30*time.Second

	wantStatus(t, post(t, uri, mpns.KindToast, "", "a", toastBody("a")), 200, "Received", "Connected")
	got := d.expectNotify()
	ts.waitTimer(t0.Add(bound))
	ts.clk.Advance(time.Minute)
	d.ack(got[0].Seq)
	waitQueueEmpty(t, ts, d.id)
	d.barrier()
	// The writer let go of its timer: nothing is outstanding.
	testenv.Eventually(t, frameWait, "ack deadline dropped", func() bool {
		return !slices.ContainsFunc(ts.clk.Pending(), t0.Add(bound).Equal)
	})
	ts.clk.Advance(10 * bound)
	d.barrier()
	wantStatus(t, post(t, uri, mpns.KindToast, "", "b", toastBody("b")), 200, "Received", "Connected")
	if got := d.expectNotify(); len(got) != 1 || got[0].MessageID != "b" {
		t.Fatalf("got %v", messageIDs(got))
	}
	if q, err := ts.store.Pending(context.Background(), d.id, 0); err != nil || len(q) != 1 {
		t.Fatalf("queue %d, err %v", len(q), err)
	}
}

// A session's end does not wait for its writer's read of a slow store:
// the read is abandoned, so a device taken over or disconnected is let go
// at once.
func TestSessionEndAbandonsSlowRead(t *testing.T) {
	h := &heldReads{entered: make(chan struct{}, 1)}
	ts := startServiceWrapped(t, server.Config{}, sqlitestore.Options{GroupCommit: true}, func(st server.Store) server.Store {
		h.Store = st
		return h
	})
	d := ts.enrol()
	d.disconnect()
	h.hold()
	defer h.release()
	d.connect(0)
	select {
	case <-h.entered:
	case <-time.After(frameWait):
		t.Fatal("the session never read its queue")
	}
	gone := make(chan struct{})
	go func() {
		ts.srv.Disconnect(d.id)
		close(gone)
	}()
	select {
	case <-gone:
	case <-time.After(frameWait):
		t.Fatal("the session's end waited for its read of the store")
	}
	if code := closeCode(t, d.conn); code != websocket.CloseGoingAway {
		t.Fatalf("closed with %d", code)
	}
}
