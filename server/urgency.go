package server

import (
	"errors"
	"slices"

	"github.com/heraldpush/herald/server/store"
)

// A device reports the least urgent message it takes now (RFC 8030 §5.3):
// queued messages below it are held, neither sent nor dropped, until the
// minimum drops or they expire. Holding cannot leave them below what the
// session sends past them, because the device acknowledges cumulatively:
// an ack above a held message would delete it. So a held message below the
// last one sent is moved above it first (store.Requeue), and the session
// reads the store again.

// split separates the notifications the device's minimum urgency holds
// from those it takes.
func split(unsent []store.Queued, min int) (ready, held []store.Queued) {
	for _, q := range unsent {
		if q.Urgency < min {
			held = append(held, q)
		} else {
			ready = append(ready, q)
		}
	}
	return ready, held
}

// moveHeld moves every held notification numbered below the last one to
// send above it, and returns those left where they were; moved reports
// that it moved some, so the copy of the queue is stale.
func (st *sessionState) moveHeld(ready, held []store.Queued, q queuePort) (left []store.Queued, moved bool, err error) {
	if len(held) == 0 || len(ready) == 0 {
		return held, false, nil
	}
	top := ready[len(ready)-1].Seq
	for _, h := range held {
		if h.Seq > top {
			continue
		}
		if _, err := q.Requeue(st.id, h.Seq); err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, false, err
		}
		moved = true
	}
	return slices.DeleteFunc(held, func(q store.Queued) bool { return q.Seq < top }), moved, nil
}
