package natsstore

import (
	"context"
	"sync"
)

// turns makes one node's callers take turns per key (a device), waiting
// no longer than their context allows. Keys nobody holds or waits for are
// forgotten, so it holds only the devices in use at the moment.
type turns struct {
	mu   sync.Mutex
	keys map[string]*turn
}

type turn struct {
	held  chan struct{} // one token: whoever sent it holds the turn
	users int           // holders and waiters, under turns.mu
}

// lock waits for the key's turn; unlock gives it to the next caller.
func (t *turns) lock(ctx context.Context, key string) (unlock func(), err error) {
	t.mu.Lock()
	if t.keys == nil {
		t.keys = map[string]*turn{}
	}
	k := t.keys[key]
	if k == nil {
		k = &turn{held: make(chan struct{}, 1)}
		t.keys[key] = k
	}
	k.users++
	t.mu.Unlock()
	release := func() {
		t.mu.Lock()
		if k.users--; k.users == 0 {
			delete(t.keys, key)
		}
		t.mu.Unlock()
	}
	select {
	case k.held <- struct{}{}:
		return func() {
			<-k.held
			release()
		}, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
