package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store"
)

func named(deviceID, channelID, messageID string, urgency int) store.Queued {
	return store.Queued{DeviceID: deviceID, ChannelID: channelID, Kind: "raw", MessageID: messageID, Body: []byte("body of " + messageID),
		AcceptedAt: epoch, DueAt: epoch, Urgency: urgency}
}

func status(t *testing.T, s store.Store, deviceID, channelID, messageID string) (store.MessageStatus, error) {
	t.Helper()
	return s.MessageStatus(context.Background(), deviceID, channelID, messageID)
}

// A named notification is queued until acknowledged, then delivered;
// names are the channel's own, and unnamed ones are not remembered.
func testMessageStatus(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	opts := store.EnqueueOptions{MaxDepth: Depth}
	first := mustEnqueue(t, s, named("dev", "ch-a", "m-1", 1), opts)
	mustEnqueue(t, s, named("dev", "ch-a", "", 0), opts)
	last := mustEnqueue(t, s, named("dev", "ch-b", "m-1", -2), opts)
	st, err := status(t, s, "dev", "ch-a", "m-1")
	if err != nil || st.State != store.MessageQueued || st.Seq != first.Seq || st.Urgency != 1 || !st.At.Equal(epoch) {
		t.Fatalf("queued: %+v, %v; want queued as %d with urgency 1", st, err, first.Seq)
	}
	if qs, err := s.Pending(ctx, "dev", 0); err != nil || len(qs) != 3 || qs[0].Urgency != 1 || qs[2].Urgency != -2 {
		t.Fatalf("pending keeps urgency: %+v, %v", qs, err)
	}
	for _, c := range []struct{ dev, ch, id string }{
		{"dev", "ch-a", "m-2"}, {"dev", "ch-c", "m-1"}, {"other", "ch-a", "m-1"}, {"dev", "ch-a", ""},
	} {
		if _, err := status(t, s, c.dev, c.ch, c.id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("status of %s on %s/%s: %v, want ErrNotFound", c.id, c.dev, c.ch, err)
		}
	}
	if err := s.Ack(ctx, "dev", first.Seq+1); err != nil {
		t.Fatal(err)
	}
	st, err = status(t, s, "dev", "ch-a", "m-1")
	if err != nil || st.State != store.MessageDelivered {
		t.Fatalf("after ack: %+v, %v; want delivered", st, err)
	}
	if st, err := status(t, s, "dev", "ch-b", "m-1"); err != nil || st.State != store.MessageQueued || st.Seq != last.Seq {
		t.Fatalf("the other channel's m-1 after the ack: %+v, %v; want still queued", st, err)
	}
	// A lazy ack records delivery too, once applied.
	s.AckLater("dev", last.Seq)
	deadline := time.Now().Add(wait)
	for {
		st, err := status(t, s, "dev", "ch-b", "m-1")
		if err == nil && st.State == store.MessageDelivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after AckLater: %+v, %v; want delivered", st, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A cancelled notification leaves the queue and is remembered cancelled;
// only a queued one can be cancelled.
func testCancelMessage(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	opts := store.EnqueueOptions{MaxDepth: Depth}
	a := mustEnqueue(t, s, named("dev", "ch", "a", 0), opts)
	b := mustEnqueue(t, s, named("dev", "ch", "b", 0), opts)
	again := mustEnqueue(t, s, named("dev", "ch", "b", 0), opts) // a name a sender used twice
	// Outcomes happen, and are forgotten, by the backend's own clock (a
	// TTL in a replicated one).
	before := time.Now().Add(-time.Second)
	if err := s.CancelMessage(ctx, "dev", "other-ch", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel on another channel: %v, want ErrNotFound", err)
	}
	if err := s.CancelMessage(ctx, "dev", "ch", "b"); err != nil {
		t.Fatal(err)
	}
	if p := pendingSeqs(t, s, "dev", 0); !slices.Equal(p, []uint64{a.Seq}) {
		t.Fatalf("pending after cancel: %v, want only %d (not %d, %d)", p, a.Seq, b.Seq, again.Seq)
	}
	st, err := status(t, s, "dev", "ch", "b")
	if err != nil || st.State != store.MessageCancelled || st.At.Before(before) || st.At.After(time.Now().Add(time.Second)) {
		t.Fatalf("status after cancel: %+v, %v; want cancelled now", st, err)
	}
	if err := s.CancelMessage(ctx, "dev", "ch", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second cancel: %v, want ErrNotFound", err)
	}
	if err := s.Ack(ctx, "dev", a.Seq); err != nil {
		t.Fatal(err)
	}
	if err := s.CancelMessage(ctx, "dev", "ch", "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancel after delivery: %v, want ErrNotFound", err)
	}
	if st, err := status(t, s, "dev", "ch", "a"); err != nil || st.State != store.MessageDelivered {
		t.Fatalf("a cancel too late changed the outcome: %+v, %v", st, err)
	}
	// The numbers go on above what was cancelled.
	if next := mustEnqueue(t, s, named("dev", "ch", "c", 0), opts); next.Seq <= again.Seq {
		t.Fatalf("after a cancel the next number is %d, not above %d", next.Seq, again.Seq)
	}
}

// Requeue moves a notification above every number given, whole, and the
// commit hook hears of it with its old number.
func testRequeue(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	mustDevice(t, s, "other")
	c := watch(s)
	opts := store.EnqueueOptions{MaxDepth: Depth}
	held := mustEnqueue(t, s, named("dev", "ch", "held", -1), opts)
	b := mustEnqueue(t, s, named("dev", "ch", "b", 1), opts)
	theirs := mustEnqueue(t, s, named("other", "ch-o", "x", 0), opts)
	moved, err := s.Requeue(ctx, "dev", held.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Seq <= b.Seq || moved.Merged != held.Seq || moved.Urgency != -1 || moved.MessageID != "held" ||
		string(moved.Body) != "body of held" || moved.ChannelID != "ch" || !moved.AcceptedAt.Equal(epoch) {
		t.Fatalf("requeued: %+v; want it whole above %d with Merged %d", moved, b.Seq, held.Seq)
	}
	if !c.told("dev", moved.Seq) {
		t.Fatal("the hook was not told of the requeued notification")
	}
	if p := pendingSeqs(t, s, "dev", 0); !slices.Equal(p, []uint64{b.Seq, moved.Seq}) {
		t.Fatalf("pending after requeue: %v, want [%d %d]", p, b.Seq, moved.Seq)
	}
	if st, err := status(t, s, "dev", "ch", "held"); err != nil || st.Seq != moved.Seq {
		t.Fatalf("status follows the new number: %+v, %v", st, err)
	}
	for name, seq := range map[string]uint64{"gone": held.Seq, "another device's": theirs.Seq, "never given": moved.Seq + 100} {
		if _, err := s.Requeue(ctx, "dev", seq); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("requeue of a %s number: %v, want ErrNotFound", name, err)
		}
	}
	if _, err := s.Requeue(ctx, "dev", store.MaxSeq+1); err == nil {
		t.Error("requeue of a number out of range succeeded")
	}
	d, err := s.Device(ctx, "dev")
	if err != nil || d.NextSeq <= moved.Seq {
		t.Fatalf("NextSeq %d after a requeue to %d (%v)", d.NextSeq, moved.Seq, err)
	}
	// A full queue still moves: the move keeps its depth.
	for len(pendingSeqs(t, s, "dev", 0)) < Depth {
		mustEnqueue(t, s, named("dev", "ch", "filler", 0), opts)
	}
	again, err := s.Requeue(ctx, "dev", moved.Seq)
	if err != nil {
		t.Fatalf("requeue in a full queue: %v", err)
	}
	p := pendingSeqs(t, s, "dev", 0)
	if len(p) != Depth || p[len(p)-1] != again.Seq || slices.Contains(p, moved.Seq) {
		t.Fatalf("after a requeue at the depth: %d queued, last %d; want %d, last %d", len(p), p[len(p)-1], Depth, again.Seq)
	}
}
