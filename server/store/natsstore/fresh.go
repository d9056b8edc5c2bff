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
		f.mu.Unlock()
		select {
		case <-fl.done:
			return fl.val, fl.err
		default:
		}
		select {
		case <-fl.done:
			return fl.val, fl.err
		case <-landed:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
		f.mu.Lock()
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
