package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/server/store/storetest"
)

type call struct {
	op     store.Op
	failed bool
}

type recorder struct {
	mu    sync.Mutex
	calls []call
}

func (r *recorder) ObserveStore(op store.Op, took time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{op, store.Failed(err)})
}

func (r *recorder) take() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}

func openSQLite(t testing.TB) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	return storetest.Start(t, s)
}

// TestObserved: each call through Observed is told once, under its own
// operation, with answers about the data (not found, already there) told
// as such and not as failures, and a closed store's refusal as one.
func TestObserved(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	o := store.Observe(openSQLite(t), rec)
	dev := store.Device{ID: "d", SecretHash: []byte("h"), CreatedAt: t0, LastSeen: t0}
	tests := []struct {
		name string
		do   func() error
		want call
	}{
		{"create device", func() error { return o.CreateDevice(ctx, dev) }, call{store.OpCreateDevice, false}},
		{"create it again", func() error { return o.CreateDevice(ctx, dev) }, call{store.OpCreateDevice, false}},
		{"unknown token", func() error { _, err := o.ChannelByToken(ctx, "nope"); return err }, call{store.OpChannelByToken, false}},
		{"enqueue", func() error {
			_, err := o.Enqueue(ctx, store.Queued{DeviceID: "d", ChannelID: "c", Kind: "raw", Body: []byte("x"), AcceptedAt: t0, DueAt: t0}, store.EnqueueOptions{})
			return err
		}, call{store.OpEnqueue, false}},
		{"pending", func() error { _, err := o.Pending(ctx, "d", 0); return err }, call{store.OpPending, false}},
		{"ack", func() error { return o.Ack(ctx, "d", 1) }, call{store.OpAck, false}},
		{"ack out of range", func() error { return o.Ack(ctx, "d", store.MaxSeq+1) }, call{store.OpAck, false}},
		{"queue length", func() error { _, err := o.QueueLength(ctx); return err }, call{store.OpQueueLength, false}},
		{"closed", func() error {
			o.Close()
			_, err := o.Enqueue(ctx, store.Queued{DeviceID: "d"}, store.EnqueueOptions{})
			if !errors.Is(err, store.ErrClosed) {
				return fmt.Errorf("enqueue on a closed store: %v", err)
			}
			return nil
		}, call{store.OpEnqueue, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			if err != nil && !errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrSeqRange) {
				t.Fatal(err)
			}
			got := rec.take()
			if len(got) != 1 || got[0] != tt.want {
				t.Fatalf("observed %+v, want [%+v]", got, tt.want)
			}
		})
	}
	if s := store.OpRequeue.String(); s != "requeue" {
		t.Errorf("OpRequeue is %q", s)
	}
	if s := store.NumOps.String(); s != "unknown" {
		t.Errorf("NumOps is %q", s)
	}
}

type discard struct{}

func (discard) ObserveStore(store.Op, time.Duration, error) {}

// BenchmarkObserved measures what the wrapper adds to the cheapest call
// on the notification path, a channel found in the token cache.
func BenchmarkObserved(b *testing.B) {
	ctx := context.Background()
	s := openSQLite(b)
	if err := s.CreateDevice(ctx, store.Device{ID: "d", SecretHash: []byte("h")}); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateChannel(ctx, store.Channel{ID: "c", DeviceID: "d", App: "a", Name: "n", Token: "tok"}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		s    store.Store
	}{{"bare", s}, {"observed", store.Observe(s, discard{})}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.s.ChannelByToken(ctx, "tok"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
