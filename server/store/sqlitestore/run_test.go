package sqlitestore_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// TestRunOwnsTheCommitter: Open starts nothing, so a write waits for Run
// and is committed once Run starts; after Run has stopped (its ctx ended),
// writes fail with ErrClosed rather than wait for ever, a second Run is
// refused, and a lazy ack given before the stop was committed by it.
func TestRunOwnsTheCommitter(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "svc.db")
	s, err := sqlitestore.Open(ctx, file, sqlitestore.Options{GroupCommit: true, AckDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	created := make(chan error, 1)
	go func() {
		created <- s.CreateDevice(ctx, store.Device{ID: "d", SecretHash: []byte("h"), CreatedAt: t0, LastSeen: t0})
	}()
	select {
	case err := <-created:
		t.Fatalf("a write was answered (%v) with no committer running", err)
	default:
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- s.Run(runCtx) }()
	if err := <-created; err != nil {
		t.Fatalf("the write waiting for Run: %v", err)
	}
	if _, err := s.Enqueue(ctx, queued("d", "m1"), sqlitestore.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(ctx); err == nil {
		t.Fatal("a second Run was accepted")
	}
	s.AckLater("d", 1)
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := s.Enqueue(ctx, queued("d", "m2"), sqlitestore.EnqueueOptions{}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Enqueue after Run stopped: %v, want ErrClosed", err)
	}
	if p, err := s.Pending(ctx, "d", 0); err != nil || len(p) != 0 {
		t.Fatalf("pending after the lazy ack and the stop: %+v %v, want none", p, err)
	}
}

// TestCloseWithoutRun: a store closed without ever running fails the
// writes waiting with ErrClosed instead of leaving them hanging.
func TestCloseWithoutRun(t *testing.T) {
	ctx := context.Background()
	s, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	created := make(chan error, 1)
	go func() { created <- s.CreateDevice(ctx, store.Device{ID: "d", SecretHash: []byte("h")}) }()
	// The write is handed over (or about to be) when Close comes; either
	// way it ends with ErrClosed.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-created; !errors.Is(err, store.ErrClosed) {
		t.Fatalf("the waiting write: %v, want ErrClosed", err)
	}
}
