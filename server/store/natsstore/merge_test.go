package natsstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/natsstore"
)

func openMerging(t *testing.T, opts natsstore.Options) *natsstore.Store {
	t.Helper()
	opts.URLs, opts.Prefix = natstest.Run(t).URL(), "merge"
	s, err := natsstore.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.CreateDevice(context.Background(), store.Device{ID: "dev"}); err != nil {
		t.Fatal(err)
	}
	return s
}

const tileKey = "ch\x00main"

func tileUpdate(body string) store.Queued {
	return store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "tile", Class: 1, Body: []byte(body), TileKey: tileKey}
}

func withKey(t *testing.T, s *natsstore.Store) (tiles []store.Queued, others int) {
	t.Helper()
	qs, err := s.Pending(context.Background(), "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.TileKey == tileKey {
			tiles = append(tiles, q)
		} else {
			others++
		}
	}
	return tiles, others
}

// A merge that keeps losing to other enqueues to the device tries again
// with fresh state until its deadline, then fails as unavailable (a 503
// to the sender): it never queues the update unmerged beside the one it
// should have replaced.
func TestMergeConflictsUntilDeadline(t *testing.T) {
	ctx := context.Background()
	s := openMerging(t, natsstore.Options{QueueDepth: 10_000})
	older, err := s.Enqueue(ctx, tileUpdate("old"), store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		tries atomic.Int64
		mu    sync.Mutex
		errs  []error
	)
	// The deadline comes during the tenth attempt, however long each
	// takes on a loaded machine: a merge gives up at its deadline, not
	// after some number of attempts.
	const attempts = 10
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	merge := func(o store.Queued) ([]byte, bool) {
		// Another notification to the device lands between every read
		// of the queue and the publish that depends on it.
		if tries.Add(1) == attempts {
			cancel()
		}
		if _, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", Kind: "raw", Body: []byte("other")}, store.EnqueueOptions{}); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		return []byte(string(o.Body) + "+new"), true
	}
	got, err := s.Enqueue(dctx, tileUpdate("new"), store.EnqueueOptions{Merge: merge})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a merge that never settles: %+v, %v; want ErrUnavailable", got, err)
	}
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if tries.Load() != attempts {
		t.Fatalf("merged %d times: want it tried again after each conflict until the deadline, %d times", tries.Load(), attempts)
	}
	tiles, others := withKey(t, s)
	if len(tiles) != 1 || tiles[0].Seq != older.Seq || string(tiles[0].Body) != "old" {
		t.Fatalf("tile updates queued: %+v; want only the older one", tiles)
	}
	if others != int(tries.Load()) {
		t.Fatalf("%d other notifications queued, want the %d enqueued", others, tries.Load())
	}
}

// A notification past its expiry by the service's clock, which the stream
// holds until its own TTL deletes it, still ends the device's subject: a
// merge expects it there rather than failing on it every time.
func TestMergeBehindExpiredTail(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Now().UnixMilli())
	s := openMerging(t, natsstore.Options{Now: func() time.Time { return time.UnixMilli(now.Load()) }})
	older, err := s.Enqueue(ctx, tileUpdate("old"), store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expiring := store.Queued{DeviceID: "dev", Kind: "webpush", Body: []byte("brief"),
		ExpiresAt: time.UnixMilli(now.Load()).Add(time.Minute)}
	if _, err := s.Enqueue(ctx, expiring, store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	now.Add((2 * time.Minute).Milliseconds())
	merged, err := s.Enqueue(ctx, tileUpdate("new"), store.EnqueueOptions{Merge: func(o store.Queued) ([]byte, bool) {
		return []byte(string(o.Body) + "+new"), true
	}})
	if err != nil {
		t.Fatal(err)
	}
	tiles, others := withKey(t, s)
	if merged.Merged != older.Seq || len(tiles) != 1 || tiles[0].Seq != merged.Seq || string(tiles[0].Body) != "old+new" || others != 0 {
		t.Fatalf("merged %+v; queued %+v and %d others: want the merge alone", merged, tiles, others)
	}
}

// Updates of one Topic to one device from parallel senders: each settles
// against the others (on one node they take turns), so this is the rate
// one device's Topic can be replaced at, not the store's.
func BenchmarkTopicReplaceOneDevice(b *testing.B) {
	ctx := context.Background()
	s, err := natsstore.Open(ctx, natsstore.Options{URLs: natstest.Run(b).URL(), Prefix: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateDevice(ctx, store.Device{ID: "dev"}); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			q := store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "webpush", Body: []byte("score"), TileKey: "ch\x00topic\x00score"}
			if _, err := s.Enqueue(ctx, q, store.EnqueueOptions{Merge: func(store.Queued) ([]byte, bool) { return q.Body, true }}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if qs, err := s.Pending(ctx, "dev", 0); err != nil || len(qs) != 1 {
		b.Fatalf("%d queued, %v; want 1", len(qs), err)
	}
}
