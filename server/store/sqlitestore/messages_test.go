package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/server/store/storetest"
)

func openAt(t *testing.T, now *atomic.Int64) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true,
		Now: func() time.Time { return time.UnixMilli(now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Start(t, s)
	if err := s.CreateDevice(context.Background(), store.Device{ID: "dev", SecretHash: []byte("h"), CreatedAt: time.UnixMilli(now.Load()),
		LastSeen: time.UnixMilli(now.Load())}); err != nil {
		t.Fatal(err)
	}
	return s
}

// An outcome is forgotten OutcomeRetention after the ack that made it.
func TestOutcomeForgottenAfterRetention(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
	s := openAt(t, &now)
	q, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "raw", MessageID: "m", Body: []byte("x")}, store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, "dev", q.Seq); err != nil {
		t.Fatal(err)
	}
	now.Add(store.OutcomeRetention.Milliseconds())
	if st, err := s.MessageStatus(ctx, "dev", "ch", "m"); err != nil || st.State != store.MessageDelivered {
		t.Fatalf("at the end of the retention: %+v, %v; want delivered", st, err)
	}
	now.Add(1)
	if _, err := s.MessageStatus(ctx, "dev", "ch", "m"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("past the retention: %v, want ErrNotFound", err)
	}
}

// One channel cannot make the store remember more than
// MaxOutcomesPerChannel outcomes (plus the one ack that crosses it);
// another channel is not affected.
func TestOutcomesBoundedPerChannel(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli())
	s := openAt(t, &now)
	const batch = 50
	enqueue := func(ch string, n int, from int) uint64 {
		t.Helper()
		var wg sync.WaitGroup
		var top atomic.Uint64
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				q, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", ChannelID: ch, Kind: "raw", MessageID: fmt.Sprint(from + i), Body: []byte("x")},
					store.EnqueueOptions{})
				if err != nil {
					errs <- err
					return
				}
				for {
					old := top.Load()
					if q.Seq <= old || top.CompareAndSwap(old, q.Seq) {
						break
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		return top.Load()
	}
	for sent := 0; sent < store.MaxOutcomesPerChannel+2*batch; sent += batch {
		if err := s.Ack(ctx, "dev", enqueue("flood", batch, sent)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack(ctx, "dev", enqueue("quiet", 1, 0)); err != nil {
		t.Fatal(err)
	}
	remembered := 0
	for i := range store.MaxOutcomesPerChannel + 2*batch {
		if _, err := s.MessageStatus(ctx, "dev", "flood", fmt.Sprint(i)); err == nil {
			remembered++
		}
	}
	if remembered < store.MaxOutcomesPerChannel || remembered > store.MaxOutcomesPerChannel+batch {
		t.Fatalf("the flooding channel has %d outcomes remembered, want %d to %d", remembered, store.MaxOutcomesPerChannel,
			store.MaxOutcomesPerChannel+batch)
	}
	if st, err := s.MessageStatus(ctx, "dev", "quiet", "0"); err != nil || st.State != store.MessageDelivered {
		t.Fatalf("another channel: %+v, %v; want delivered", st, err)
	}
}

// BenchmarkAckNamed measures an enqueue and its ack, with and without a
// message id: the difference is the cost of remembering the outcome in the
// ack's transaction.
func BenchmarkAckNamed(b *testing.B) {
	for _, named := range []bool{false, true} {
		b.Run(fmt.Sprintf("named=%v", named), func(b *testing.B) {
			ctx := context.Background()
			s, err := sqlitestore.Open(ctx, filepath.Join(b.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true})
			if err != nil {
				b.Fatal(err)
			}
			storetest.Start(b, s)
			if err := s.CreateDevice(ctx, store.Device{ID: "dev", SecretHash: []byte("h")}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				id := ""
				if named {
					id = fmt.Sprint(i)
				}
				q, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", ChannelID: fmt.Sprint(i % 50), Kind: "raw", MessageID: id, Body: []byte("x")},
					store.EnqueueOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Ack(ctx, "dev", q.Seq); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The committer records outcomes without counting a channel's while its
// notes say the channel is below the bound (notes.go). Outcomes recorded
// otherwise (a message expiring) count too, and a channel at the bound
// records again once its outcomes are past their retention.
func TestOutcomeBoundCountsExpiredAndForgotten(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now.Store(t0.UnixMilli())
	s := openAt(t, &now)
	named := func(dev, id string, expires time.Time) uint64 {
		t.Helper()
		q, err := s.Enqueue(ctx, store.Queued{DeviceID: dev, ChannelID: "flood", Kind: "raw", MessageID: id, Body: []byte("x"),
			ExpiresAt: expires}, store.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return q.Seq
	}
	const batch = 50
	for sent := 0; sent < store.MaxOutcomesPerChannel-1; sent += batch {
		var wg sync.WaitGroup
		for i := sent; i < min(sent+batch, store.MaxOutcomesPerChannel-1); i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", ChannelID: "flood", Kind: "raw", MessageID: fmt.Sprint(i),
					Body: []byte("x")}, store.EnqueueOptions{}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		d, err := s.Device(ctx, "dev")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(ctx, "dev", d.NextSeq-1); err != nil {
			t.Fatal(err)
		}
	}
	// The one left below the bound is taken by an expiry, not an ack,
	// of a notification the acking device's notes do not hold.
	if err := s.CreateDevice(ctx, store.Device{ID: "other", SecretHash: []byte("h"), CreatedAt: t0, LastSeen: t0}); err != nil {
		t.Fatal(err)
	}
	exp := named("other", "expired", t0.Add(time.Minute))
	now.Store(t0.Add(2 * time.Minute).UnixMilli())
	if n, err := s.DeleteExpired(ctx, 10); err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
	}
	if err := s.Ack(ctx, "dev", named("dev", "over", time.Time{})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MessageStatus(ctx, "dev", "flood", "over"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an outcome past the bound (after %d): %v, want ErrNotFound", exp, err)
	}
	now.Store(t0.Add(store.OutcomeRetention + time.Hour).UnixMilli())
	if err := s.Ack(ctx, "dev", named("dev", "after", time.Time{})); err != nil {
		t.Fatal(err)
	}
	if st, err := s.MessageStatus(ctx, "dev", "flood", "after"); err != nil || st.State != store.MessageDelivered {
		t.Fatalf("once the others are past their retention: %+v, %v; want delivered", st, err)
	}
}
