package sqlitestore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store"
)

// The committer skips recording outcomes for an ack that deletes nothing
// named (notes.go). Whatever it knew or did not know of the device, every
// named notification an ack deletes must still be recorded as delivered.
func TestNamedAckRecordsDelivered(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// before runs on a store where the device exists; it returns
		// the store to carry on with and the number to acknowledge up
		// to, having queued the named notification "m".
		before func(t *testing.T, s *Store, file string) (*Store, uint64)
	}{
		{"device never read", func(t *testing.T, s *Store, _ string) (*Store, uint64) {
			return s, enqueueNamed(t, s, "m")
		}},
		{"named queued after the device was read", func(t *testing.T, s *Store, _ string) (*Store, uint64) {
			ackNoted(t, s, enqueueNamed(t, s, ""))
			return s, enqueueNamed(t, s, "m")
		}},
		{"named queued before an ack below it", func(t *testing.T, s *Store, _ string) (*Store, uint64) {
			first := enqueueNamed(t, s, "")
			top := enqueueNamed(t, s, "m")
			ackNoted(t, s, first)
			return s, top
		}},
		{"requeued", func(t *testing.T, s *Store, _ string) (*Store, uint64) {
			ackNoted(t, s, enqueueNamed(t, s, ""))
			q, err := s.Requeue(ctx, "dev", enqueueNamed(t, s, "m"))
			if err != nil {
				t.Fatal(err)
			}
			return s, q.Seq
		}},
		{"queued before a restart", func(t *testing.T, s *Store, file string) (*Store, uint64) {
			ackNoted(t, s, enqueueNamed(t, s, ""))
			top := enqueueNamed(t, s, "m")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return openSeqStore(t, file), top
		}},
		{"deleted device read again", func(t *testing.T, s *Store, _ string) (*Store, uint64) {
			ackNoted(t, s, enqueueNamed(t, s, ""))
			if gone, err := s.DeleteDevice(ctx, "dev", seqT0.Add(time.Second)); err != nil || !gone {
				t.Fatalf("DeleteDevice = %v, %v", gone, err)
			}
			seqDevice(t, s, "dev")
			return s, enqueueNamed(t, s, "m")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "svc.db")
			s := openSeqStore(t, file)
			seqDevice(t, s, "dev")
			s, top := tc.before(t, s, file)
			if err := s.Ack(ctx, "dev", top); err != nil {
				t.Fatal(err)
			}
			wantState(t, s, "m", store.MessageDelivered)
		})
	}
}

// A transaction that fails undoes the deletes its acks made, so what the
// committer noted in it must go too: else the named notification, still
// queued, would later be deleted by an ack as if it were not named, and
// leave no outcome.
func TestNamedForgottenWhenTransactionFails(t *testing.T) {
	ctx := context.Background()
	s := openSeqStore(t, filepath.Join(t.TempDir(), "svc.db"))
	seqDevice(t, s, "dev")
	ackNoted(t, s, enqueueNamed(t, s, ""))
	top := enqueueNamed(t, s, "m")
	failTx(t, s, &ackReq{device: "dev", seq: top})
	wantState(t, s, "m", store.MessageQueued)
	if err := s.Ack(ctx, "dev", top); err != nil {
		t.Fatal(err)
	}
	wantState(t, s, "m", store.MessageDelivered)
}

// Likewise the numbers an enqueue gave in a transaction that failed are
// given again, not skipped: the device's next number is read again.
func TestSeqsForgottenWhenTransactionFails(t *testing.T) {
	ctx := context.Background()
	s := openSeqStore(t, filepath.Join(t.TempDir(), "svc.db"))
	seqDevice(t, s, "dev")
	first := enqueueNamed(t, s, "")
	failTx(t, s, &enqueueReq{in: seqNote("dev", "lost"), done: make(chan struct{})})
	if next := enqueueNamed(t, s, ""); next != first+1 {
		t.Fatalf("after a failed transaction: numbered %d, want %d", next, first+1)
	}
	if _, err := s.MessageStatus(ctx, "dev", "ch", "lost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the failed enqueue's notification: %v, want ErrNotFound", err)
	}
}

var errFailing = errors.New("the transaction fails")

// failTx runs inner in a transaction of its own that then fails.
func failTx(t *testing.T, s *Store, inner writeReq) {
	t.Helper()
	r := &failing{inner: inner, done: make(chan struct{})}
	if err := s.submit(context.Background(), r, r.done); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(r.err, errFailing) {
		t.Fatalf("failing transaction: %v", r.err)
	}
}

// failing applies its inner request, then fails the transaction.
type failing struct {
	inner writeReq
	err   error
	done  chan struct{}
}

func (r *failing) apply(ctx context.Context, g *groupTx) error {
	if a, ok := r.inner.(*ackReq); ok {
		g.acks[a.device] = a
	}
	if err := r.inner.apply(ctx, g); err != nil {
		return err
	}
	return errFailing
}

func (r *failing) finish(err error) {
	r.err = err
	close(r.done)
}

// enqueueNamed queues a notification for "dev" named msg ("" unnamed) and
// returns its number.
func enqueueNamed(t *testing.T, s *Store, msg string) uint64 {
	t.Helper()
	q, err := s.Enqueue(context.Background(), seqNote("dev", msg), EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return q.Seq
}

// ackNoted acknowledges up to seq, which makes the committer read "dev".
func ackNoted(t *testing.T, s *Store, seq uint64) {
	t.Helper()
	if err := s.Ack(context.Background(), "dev", seq); err != nil {
		t.Fatal(err)
	}
}

func wantState(t *testing.T, s *Store, msg string, want store.MessageState) {
	t.Helper()
	st, err := s.MessageStatus(context.Background(), "dev", "ch", msg)
	if err != nil || st.State != want {
		t.Fatalf("MessageStatus(%q) = %+v, %v; want %s", msg, st, err, want)
	}
}
