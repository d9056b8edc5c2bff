package natsstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/natsstore"
)

// boundNodes opens n stores on one prefix of the server at url, the nodes
// of one cluster, and enrols "dev".
func boundNodes(t *testing.T, url, prefix string, n, depth int) []*natsstore.Store {
	t.Helper()
	var out []*natsstore.Store
	for range n {
		s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: url, Prefix: prefix, QueueDepth: depth, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	if err := out[0].CreateDevice(context.Background(), store.Device{ID: "dev"}); err != nil {
		t.Fatal(err)
	}
	return out
}

// A deleted device leaves nothing behind on any node: the queue's bound
// every node kept for it goes when the node's copy of the devices sees the
// deletion, and the deletion's revision, kept a while for compare-and-set,
// goes at the copy's sweep. Before, both stayed until the node restarted,
// so a cluster's memory grew with every device that ever went away.
func TestDeletedDeviceForgottenOnEveryNode(t *testing.T) {
	const devices = 10
	ctx := context.Background()
	url := natstest.Run(t).URL()
	var nodes []*natsstore.Store
	for range 2 {
		s, err := natsstore.Open(ctx, natsstore.Options{URLs: url, Prefix: "gone", Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes = append(nodes, s)
	}
	for i := range devices {
		id := fmt.Sprintf("dev%d", i)
		if err := nodes[0].CreateDevice(ctx, store.Device{ID: id}); err != nil {
			t.Fatal(err)
		}
		q := plain("m")
		q.DeviceID = id
		if _, err := nodes[i%2].Enqueue(ctx, q, store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, want int, count func(*natsstore.Store) int) {
		t.Helper()
		for i, n := range nodes {
			deadline := time.Now().Add(10 * time.Second)
			for count(n) != want {
				if time.Now().After(deadline) {
					t.Fatalf("node %d: %d %s; want %d", i, count(n), what, want)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	waitFor("bounds", devices, natsstore.Bounds)

	for i := range devices {
		deleted, err := nodes[0].DeleteDevice(ctx, fmt.Sprintf("dev%d", i), time.Now().Add(time.Hour))
		if err != nil || !deleted {
			t.Fatalf("delete dev%d: %v, %v", i, deleted, err)
		}
	}
	waitFor("bounds", 0, natsstore.Bounds)
	waitFor("deleted devices' revisions", devices, natsstore.DeletedDevices)
	for i, n := range nodes {
		natsstore.ForgetDeleted(n, time.Now()) // too soon: kept
		if got := natsstore.DeletedDevices(n); got != devices {
			t.Fatalf("node %d: %d deleted devices' revisions after an early sweep; want %d", i, got, devices)
		}
		natsstore.ForgetDeleted(n, time.Now().Add(11*time.Minute))
		if got := natsstore.DeletedDevices(n); got != 0 {
			t.Fatalf("node %d: %d deleted devices' revisions after the sweep; want 0", i, got)
		}
		q := plain("late")
		q.DeviceID = "dev1"
		if _, err := n.Enqueue(ctx, q, store.EnqueueOptions{}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("node %d: enqueue to a deleted device: %v; want ErrNotFound", i, err)
		}
	}
	if got := natsstore.Bounds(nodes[0]) + natsstore.Bounds(nodes[1]); got != 0 {
		t.Fatalf("%d bounds after refused enqueues; want 0", got)
	}
}

func plain(text string) store.Queued {
	return store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "toast", Class: 2, MessageID: text, Body: []byte(text)}
}

// Plain enqueues from two nodes in turn stop at the depth exactly, though
// the stream holds one more: each node counts the other's enqueues as its
// follower of the stream sees them, and checks exactly near the depth.
// Acknowledging makes room again, which a node sees when it checks.
func TestPlainEnqueuesStopAtDepthAcrossNodes(t *testing.T) {
	const depth = 12
	nodes := boundNodes(t, natstest.Run(t).URL(), "bound", 2, depth)
	ctx := context.Background()
	opts := store.EnqueueOptions{MaxDepth: depth}
	var last store.Queued
	for i := 0; ; i++ {
		q, err := nodes[i%2].Enqueue(ctx, plain(fmt.Sprintf("m%02d", i)), opts)
		if errors.Is(err, store.ErrQueueFull) {
			if i != depth {
				t.Fatalf("refused as full after %d, want %d", i, depth)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i > depth {
			t.Fatalf("enqueue %d accepted past the depth %d", i, depth)
		}
		last = q
	}
	for _, s := range nodes {
		if _, err := s.Enqueue(ctx, plain("over"), opts); !errors.Is(err, store.ErrQueueFull) {
			t.Fatalf("enqueue past the depth: %v, want %v", err, store.ErrQueueFull)
		}
	}
	qs, err := nodes[1].Pending(ctx, "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != depth {
		t.Fatalf("%d queued, want the depth, %d", len(qs), depth)
	}
	if err := nodes[0].Ack(ctx, "dev", last.Seq); err != nil {
		t.Fatal(err)
	}
	for i, s := range nodes {
		if _, err := s.Enqueue(ctx, plain(fmt.Sprint("after-ack-", i)), opts); err != nil {
			t.Fatalf("node %d: enqueue after the ack: %v", i, err)
		}
	}
}

// A replacement in a queue at the depth publishes into the stream's one
// place above it before deleting what it replaced, and leaves the queue
// at the depth: the next plain enqueue is refused.
func TestReplaceAtDepthLeavesDepth(t *testing.T) {
	const depth = 5
	s := boundNodes(t, natstest.Run(t).URL(), "atdepth", 1, depth)[0]
	ctx := context.Background()
	opts := store.EnqueueOptions{MaxDepth: depth}
	for i := range depth - 1 {
		if _, err := s.Enqueue(ctx, plain(fmt.Sprint("m", i)), opts); err != nil {
			t.Fatal(err)
		}
	}
	merge := store.EnqueueOptions{MaxDepth: depth, Merge: func(older store.Queued) ([]byte, bool) {
		return []byte(string(older.Body) + "+new"), true
	}}
	older, err := s.Enqueue(ctx, tileUpdate("old"), merge)
	if err != nil {
		t.Fatal(err)
	}
	merged, err := s.Enqueue(ctx, tileUpdate("new"), merge)
	if err != nil {
		t.Fatalf("a merge at the depth: %v", err)
	}
	tiles, others := withKey(t, s)
	if merged.Merged != older.Seq || len(tiles) != 1 || string(tiles[0].Body) != "old+new" || others != depth-1 {
		t.Fatalf("after the merge: %+v; tiles %+v, %d others; want one \"old+new\" and %d others", merged, tiles, others, depth-1)
	}
	if _, err := s.Enqueue(ctx, plain("over"), opts); !errors.Is(err, store.ErrQueueFull) {
		t.Fatalf("a plain enqueue after a merge at the depth: %v, want %v", err, store.ErrQueueFull)
	}
	if _, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "tile", Class: 1, Body: []byte("x"),
		TileKey: "ch\x00other"}, merge); !errors.Is(err, store.ErrQueueFull) {
		t.Fatalf("an update of a new key at the depth: %v, want %v", err, store.ErrQueueFull)
	}
}

// Plain enqueues on a single server: to one device from one sender, to a
// device each from parallel senders (both with a queue far deeper than
// they fill), the first to each of many devices, and to one device with
// the default depth acknowledged every 100, whose bound rises to near the
// depth and is read again.
func BenchmarkEnqueuePlain(b *testing.B) {
	ctx := context.Background()
	url := natstest.Run(b).URL()
	open := func(prefix string, depth int) *natsstore.Store {
		s, err := natsstore.Open(ctx, natsstore.Options{URLs: url, Prefix: prefix, QueueDepth: depth})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	deep, shallow := open("deep", 1<<20), open("shallow", 0)
	var devices atomic.Int64
	newDevice := func(s *natsstore.Store) string {
		id := fmt.Sprintf("dev-%d", devices.Add(1))
		if err := s.CreateDevice(ctx, store.Device{ID: id}); err != nil {
			b.Fatal(err)
		}
		return id
	}
	b.Run("OneDevice", func(b *testing.B) {
		id := newDevice(deep)
		for b.Loop() {
			q := plain("x")
			q.DeviceID = id
			if _, err := deep.Enqueue(ctx, q, store.EnqueueOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DeviceEach", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			id := newDevice(deep)
			for pb.Next() {
				q := plain("x")
				q.DeviceID = id
				if _, err := deep.Enqueue(ctx, q, store.EnqueueOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("FirstToEachDevice", func(b *testing.B) {
		ids := make([]string, b.N)
		for i := range ids {
			ids[i] = newDevice(shallow)
		}
		b.ResetTimer()
		for _, id := range ids {
			q := plain("x")
			q.DeviceID = id
			if _, err := shallow.Enqueue(ctx, q, store.EnqueueOptions{MaxDepth: 500}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("OneDeviceAcked", func(b *testing.B) {
		id := newDevice(shallow)
		for i := 0; i < b.N; i++ {
			q := plain("x")
			q.DeviceID = id
			got, err := shallow.Enqueue(ctx, q, store.EnqueueOptions{MaxDepth: 500})
			if err != nil {
				b.Fatal(err)
			}
			if i%100 == 99 {
				b.StopTimer()
				if err := shallow.Ack(ctx, id, got.Seq); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		}
	})
}
