package channel

import (
	"context"
	"sync"
)

// offline holds the link down on request, as a phone out of coverage would
// be: the service sees the device go away (TempDisconnected) and queues.
type offline struct {
	mu   sync.Mutex
	on   bool
	back chan struct{} // closed when the link may connect again
}

// SetOffline drops the link and keeps it down (true), or lets it connect
// again at once (false).
func (l *Link) SetOffline(off bool) {
	l.off.mu.Lock()
	changed := l.off.on != off
	l.off.on = off
	if off && changed {
		l.off.back = make(chan struct{})
	}
	if !off && changed && l.off.back != nil {
		close(l.off.back)
	}
	l.off.mu.Unlock()
	if changed {
		// Dropping the connection, or skipping the backoff wait when
		// coming back.
		l.Reconnect()
	}
}

// Offline reports whether the link is held down by SetOffline.
func (l *Link) Offline() bool {
	l.off.mu.Lock()
	defer l.off.mu.Unlock()
	return l.off.on
}

// waitOnline blocks while the link is held offline; it returns false when
// ctx ends first.
func (l *Link) waitOnline(ctx context.Context) bool {
	l.off.mu.Lock()
	on, back := l.off.on, l.off.back
	l.off.mu.Unlock()
	if !on {
		return true
	}
	select {
	case <-back:
		return true
	case <-ctx.Done():
		return false
	}
}
