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
