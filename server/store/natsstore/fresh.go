package natsstore

import (
	"context"
	"sync"
)

// fresh shares one read among callers that each need a value read after
// their call began: a caller arriving while a read is in flight waits for
// the next one, which the first of its waiters starts once the flight
// lands. A node taking a thousand hellos at once asks NATS a few times,
// not a thousand.
type fresh[T any] struct {
	read   func(context.Context) (T, error)
	mu     sync.Mutex
	busy   bool          // a read is in flight
	landed chan struct{} // closed when the read in flight lands
	next   *flight[T]    // the read that starts after it, if anyone waits
	// waiting counts callers waiting for another's read (for tests).
	waiting int
}

type flight[T any] struct {
	done chan struct{}
	val  T
	err  error
}

func (f *fresh[T]) get(ctx context.Context) (T, error) {
	f.mu.Lock()
	if f.next == nil {
		f.next = &flight[T]{done: make(chan struct{})}
	}
	fl := f.next
	for {
		if !f.busy && f.next == fl {
			return f.lead(ctx, fl)
		}
		landed := f.landed
		f.waiting++
		f.mu.Unlock()
		v, done, err := f.wait(ctx, fl, landed)
		f.mu.Lock()
		f.waiting--
		if done {
			f.mu.Unlock()
			return v, err
		}
	}
}

// wait waits for fl, or for the read in flight to land (done false: fl may
// now be the caller's to lead).
func (f *fresh[T]) wait(ctx context.Context, fl *flight[T], landed chan struct{}) (v T, done bool, err error) {
	select {
	case <-fl.done:
		return fl.val, true, fl.err
	default:
	}
	select {
	case <-fl.done:
		return fl.val, true, fl.err
	case <-landed:
		return v, false, nil
	case <-ctx.Done():
		return v, true, ctx.Err()
	}
}

// lead reads for fl, with f.mu held on entry. The read outlives the
// leader's own cancellation: others wait for it (it is bounded by the
// store's timeout).
func (f *fresh[T]) lead(ctx context.Context, fl *flight[T]) (T, error) {
	landed := make(chan struct{})
	f.busy, f.next, f.landed = true, nil, landed
	f.mu.Unlock()
	fl.val, fl.err = f.read(context.WithoutCancel(ctx))
	close(fl.done)
	f.mu.Lock()
	f.busy = false
	close(landed)
	f.mu.Unlock()
	return fl.val, fl.err
}
