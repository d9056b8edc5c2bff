package natsstore

import (
	"slices"
	"sync"
)

// An acknowledgement records the delivered outcome of every named
// notification (an MPNS X-MessageID, a Web Push message) it covers, which
// meant reading the device's subject up to the number acknowledged before
// purging it: a read of the stream's leader for every ack, named
// notifications or not. namedSeqs spares that read for the devices this
// node serves: from the moment a session reads a device's queue, the
// node's follower of the stream, which sees every commit, notes the named
// notifications queued for it, so an ack that covers none of them only
// purges. Whenever that is not certain (no read since the node started,
// since its connection to NATS was re-established, or since the device
// was released, or before this node's first ack cleared what the read
// left below its number) the ack reads as before. A named one noted at or
// below the number acknowledged also reads, so that one merged away or
// cancelled meanwhile is never recorded as delivered.
type namedSeqs struct {
	mu sync.Mutex
	// epoch changes whenever the follower may have missed commits; a
	// device's notes count only from a read made in the same epoch.
	epoch uint64
	m     map[string]*namedNote
}

type namedNote struct {
	epoch uint64
	// after is the number the session's read started above, done once
	// the read has returned; purged is the highest number this node
	// purged the subject up to after reading it, so everything at or
	// below it is gone.
	after, purged uint64
	done          bool
	seqs          []uint64 // named notifications noted, ascending
}

// reading is called before a read of the device's queue above after; its
// result is done when the read has returned.
func (n *namedSeqs) reading(dev string, after uint64) (done func(named []uint64)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.m[dev]
	if e != nil && e.epoch == n.epoch && e.done {
		// A later read knows no more than the notes have.
		return func([]uint64) {}
	}
	if n.m == nil {
		n.m = map[string]*namedNote{}
	}
	e = &namedNote{epoch: n.epoch, after: after}
	n.m[dev] = e
	return func(named []uint64) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.m[dev] != e || e.epoch != n.epoch {
			return
		}
		for _, seq := range named {
			e.note(seq)
		}
		e.done = true
	}
}

func (e *namedNote) note(seq uint64) {
	i, found := slices.BinarySearch(e.seqs, seq)
	if !found {
		e.seqs = slices.Insert(e.seqs, i, seq)
	}
}

// committed notes a named notification the follower saw.
func (n *namedSeqs) committed(dev string, seq uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e := n.m[dev]; e != nil && e.epoch == n.epoch {
		e.note(seq)
	}
}

// unnamedUpTo reports whether the device's subject certainly holds no
// named notification at or below seq.
func (n *namedSeqs) unnamedUpTo(dev string, seq uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.m[dev]
	if e == nil || e.epoch != n.epoch || !e.done || e.purged < e.after {
		return false
	}
	return len(e.seqs) == 0 || e.seqs[0] > seq
}

// purged records that the subject was purged up to seq after the read,
// and forgets the notes it covers.
func (n *namedSeqs) purgedTo(dev string, seq uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e := n.m[dev]
	if e == nil || e.epoch != n.epoch || !e.done {
		return
	}
	e.purged = max(e.purged, seq)
	i, _ := slices.BinarySearch(e.seqs, seq+1)
	e.seqs = slices.Delete(e.seqs, 0, i)
}

// forget drops a device's notes (released by this node).
func (n *namedSeqs) forget(dev string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.m, dev)
}

// missed drops every note: the follower may have missed commits.
func (n *namedSeqs) missed() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.epoch++
	n.m = nil
}
