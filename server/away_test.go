package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// TestAwayAndBack walks a device through MPNS's device states: queued while
// away, delivered in order on its return before new traffic, bounded by the
// queue depth with tile updates merged instead of stacked, and dropped with
// 412 once it has been away longer than InactiveAfter.
func TestAwayAndBack(t *testing.T) {
	ts := startService(t, server.Config{QueueDepth: 5, InactiveAfter: time.Hour})
	d := ts.enrol()
	_, uri := d.register("app", true, true, "/Second.xaml")
	d.disconnect()
	ctx := context.Background()

	steps := []struct {
		kind         mpns.Kind
		id           string
		body         []byte
		notification string
	}{
		{mpns.KindToast, "t1", toastBody("1"), "Received"},
		{mpns.KindTile, "tileA", tileBody("", set("Title", "Inbox"), set("Count", "1"), set("BackTitle", "old")), "Received"},
		{mpns.KindToast, "t2", toastBody("2"), "Received"},
		// Merges into tileA: the queue stays at 3.
		{mpns.KindTile, "tileB", tileBody("", set("Count", "2"), clear("BackTitle")), "Received"},
		{mpns.KindTile, "second", tileBody("/Second.xaml", set("Title", "S")), "Received"},
		{mpns.KindToast, "t3", toastBody("3"), "Received"},
		{mpns.KindToast, "t4", toastBody("4"), "QueueFull"},
		{mpns.KindRaw, "r1", []byte("raw"), "QueueFull"},
		// A full queue still takes updates to a queued tile: they merge.
		{mpns.KindTile, "tileC", tileBody("", set("Count", "7")), "Received"},
		{mpns.KindTile, "second2", tileBody("/Second.xaml", set("Count", "9")), "Received"},
	}
	for _, s := range steps {
		got := post(t, uri, s.kind, "", s.id, s.body)
		wantStatus(t, got, 200, s.notification, "TempDisconnected")
		if got.MessageID != s.id {
			t.Fatalf("%s: X-MessageID echoed as %q", s.id, got.MessageID)
		}
	}
	if q, err := ts.store.Pending(ctx, d.id, 0); err != nil || len(q) != 5 {
		t.Fatalf("queue holds %d (err %v), want 5", len(q), err)
	}

	// Back: the backlog comes first, in sequence order, then new traffic
	// (once an ack has made room for it).
	d.connect(0)
	got := d.collect(5)
	d.ack(got[0].Seq)
	testenv.Eventually(t, frameWait, "first ack applied", func() bool {
		q, err := ts.store.Pending(ctx, d.id, 0)
		return err == nil && len(q) == 4
	})
	wantStatus(t, post(t, uri, mpns.KindToast, "", "new", toastBody("new")), 200, "Received", "Connected")
	got = append(got, d.collect(1)...)
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("out of order: %v", seqs(got))
		}
	}
	if ids := messageIDs(got); !slices.Equal(ids, []string{"t1", "t2", "t3", "tileC", "second2", "new"}) {
		t.Fatalf("delivered %v", ids)
	}
	primary, err := mpns.ParseTile(got[3].Body)
	if err != nil {
		t.Fatal(err)
	}
	wantFields := []mpns.Field{set("Title", "Inbox"), set("Count", "7"), clear("BackTitle")}
	if !slices.Equal(primary.Fields, wantFields) {
		t.Fatalf("merged tile %+v, want %+v", primary.Fields, wantFields)
	}
	second, err := mpns.ParseTile(got[4].Body)
	if err != nil || second.ID != "/Second.xaml" || !slices.Equal(second.Fields, []mpns.Field{set("Title", "S"), set("Count", "9")}) {
		t.Fatalf("merged secondary tile %+v (err %v)", second, err)
	}
	d.ack(got[len(got)-1].Seq)
	waitQueueEmpty(t, ts, d.id)

	// Away again, for longer than InactiveAfter: 412, nothing kept.
	d.disconnect()
	ts.clk.Advance(time.Hour)
	wantStatus(t, post(t, uri, mpns.KindToast, "", "edge", toastBody("edge")), 200, "Received", "TempDisconnected")
	ts.clk.Advance(time.Millisecond)
	got412 := post(t, uri, mpns.KindToast, "", "late", toastBody("late"))
	wantStatus(t, got412, 412, "Dropped", "InActive")
	if got412.MessageID != "late" {
		t.Fatalf("X-MessageID echoed as %q", got412.MessageID)
	}
	q, err := ts.store.Pending(ctx, d.id, 0)
	if err != nil || len(q) != 1 || q[0].MessageID != "edge" {
		t.Fatalf("queue after 412: %+v (err %v), want only the one accepted before", q, err)
	}
}

// TestMergeNeverSendsStale merges a tile update into one the session has
// already sent but the device has not acknowledged: the device must still
// end with the newer fields, under a sequence number above what it was sent.
func TestMergeNeverSendsStale(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("app", true, true)
	post(t, uri, mpns.KindTile, "", "v1", tileBody("", set("Count", "1")))
	first := d.expectNotify()
	wantStatus(t, post(t, uri, mpns.KindTile, "", "v2", tileBody("", set("Title", "T"))), 200, "Received", "Connected")
	second := d.expectNotify()
	if second[0].Seq <= first[0].Seq {
		t.Fatalf("merged update sent as seq %d after seq %d", second[0].Seq, first[0].Seq)
	}
	tile, err := mpns.ParseTile(second[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	var state mpns.TileState
	for _, n := range append(first, second...) {
		tl, err := mpns.ParseTile(n.Body)
		if err != nil {
			t.Fatal(err)
		}
		if err := state.Apply(tl); err != nil {
			t.Fatal(err)
		}
	}
	if state.Fields["Count"] != "1" || state.Fields["Title"] != "T" || len(tile.Fields) == 0 {
		t.Fatalf("device state %v", state.Fields)
	}
	d.ack(second[0].Seq)
	waitQueueEmpty(t, ts, d.id)
}

// TestLastSeenKeptFresh checks a long-connected device's last_seen moves
// with its traffic, so a service killed without recording the disconnect
// does not answer 412 for it after a restart.
func TestLastSeenKeptFresh(t *testing.T) {
	ts := startService(t, server.Config{InactiveAfter: time.Hour})
	d := ts.enrol()
	ts.clk.Advance(2 * time.Hour)
	d.ack(0)
	testenv.Eventually(t, frameWait, "last seen updated", func() bool {
		dev, err := ts.store.Device(context.Background(), d.id)
		return err == nil && dev.LastSeen.Equal(t0.Add(2*time.Hour))
	})
}
