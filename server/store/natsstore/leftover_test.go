package natsstore

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/server/store"
)

// A merge whose older entry was left queued (a crash between publishing
// it and deleting the older one) is cleaned up by the next merge of the
// key: the device is left one entry, which holds every update.
func TestMergeDeletesLeftover(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{URLs: natstest.Run(t).URL(), Prefix: "leftover"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateDevice(ctx, store.Device{ID: "dev"}); err != nil {
		t.Fatal(err)
	}
	tile := func(body string) store.Queued {
		return store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "tile", Body: []byte(body), TileKey: "ch\x00main"}
	}
	merge := func(body string) store.EnqueueOptions {
		return store.EnqueueOptions{Merge: func(o store.Queued) ([]byte, bool) { return []byte(string(o.Body) + "+" + body), true }}
	}
	first, err := s.Enqueue(ctx, tile("a"), store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What a merge publishes, without the delete that follows it.
	left := tile("a+b")
	left.Merged = first.Seq
	if _, err := s.publish(ctx, left); err != nil {
		t.Fatal(err)
	}
	other, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", Kind: "raw", Body: []byte("other")}, store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Meanwhile the device is sent the merge alone, as if the delete had
	// been made.
	qs, err := s.Pending(ctx, "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || string(qs[0].Body) != "a+b" || qs[1].Seq != other.Seq {
		t.Fatalf("queued %+v with a leftover: want the merge of a and b, then the other notification", qs)
	}
	last, err := s.Enqueue(ctx, tile("c"), merge("c"))
	if err != nil {
		t.Fatal(err)
	}
	qs, err = s.Pending(ctx, "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || qs[0].Seq != other.Seq || qs[1].Seq != last.Seq || string(qs[1].Body) != "a+b+c" {
		t.Fatalf("queued %+v: want the other notification and the merge of a, b and c", qs)
	}
}

// A tile update or Topic message that an update of its key has replaced
// (the older entry is deleted a moment after) is not moved: a copy would
// queue the stale update after the one that replaced it. One nothing
// replaced moves as any other.
func TestRequeueReplacedKeyed(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{URLs: natstest.Run(t).URL(), Prefix: "requeue"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateDevice(ctx, store.Device{ID: "dev"}); err != nil {
		t.Fatal(err)
	}
	topic := func(key, body string) store.Queued {
		return store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "webpush", Body: []byte(body), TileKey: key, Urgency: -1}
	}
	older, err := s.Enqueue(ctx, topic("ch\x00topic\x00a", "old"), store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Enqueue(ctx, topic("ch\x00topic\x00b", "other"), store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A replacement, published and not yet followed by its delete.
	newer := topic("ch\x00topic\x00a", "new")
	newer.Merged = older.Seq
	newerSeq, err := s.publish(ctx, newer)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Requeue(ctx, "dev", older.Seq); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("moving a replaced message: %+v, %v; want ErrNotFound", got, err)
	}
	moved, err := s.Requeue(ctx, "dev", other.Seq)
	if err != nil || moved.Seq <= newerSeq || moved.Merged != other.Seq || string(moved.Body) != "other" {
		t.Fatalf("moving a message nothing replaced: %+v, %v", moved, err)
	}
	var seqs []uint64
	qs, err := s.Pending(ctx, "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		seqs = append(seqs, q.Seq)
	}
	// The replaced one, still in the stream, is not sent: the newer holds it.
	if !slices.Equal(seqs, []uint64{newerSeq, moved.Seq}) {
		t.Fatalf("queued %v, want %v", seqs, []uint64{newerSeq, moved.Seq})
	}
	if n, err := s.QueueLength(ctx); err != nil || n != 3 {
		t.Fatalf("queue length %d, %v; want 3 (the replaced one is deleted by the next update of its key)", n, err)
	}
}

// withoutReplaced leaves out exactly the entries a later entry of the same
// read names in its Merged, whatever their key.
func TestWithoutReplaced(t *testing.T) {
	q := func(seq, merged uint64) store.Queued { return store.Queued{Seq: seq, Merged: merged} }
	tests := []struct {
		name string
		in   []store.Queued
		want []uint64
	}{
		{"none", nil, nil},
		{"nothing replaced", []store.Queued{q(1, 0), q(2, 0)}, []uint64{1, 2}},
		{"a leftover", []store.Queued{q(1, 0), q(2, 0), q(3, 1)}, []uint64{2, 3}},
		{"a chain of leftovers", []store.Queued{q(1, 0), q(4, 1), q(7, 4)}, []uint64{7}},
		{"replaced below the read", []store.Queued{q(5, 2), q(6, 0)}, []uint64{5, 6}},
		{"a Merged above its own number is no replacement", []store.Queued{q(3, 0), q(2, 3)}, []uint64{3, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			for _, q := range withoutReplaced(tt.in) {
				got = append(got, q.Seq)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("withoutReplaced: %v, want %v", got, tt.want)
			}
		})
	}
}
