package server

import (
	"slices"
	"time"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

// A notify frame is filled up to frameBudget bytes of encoded notifications
// (wire.MaxFrameSize less room for the envelope) and at most maxBatch of
// them: the device applies a frame in one transaction with one fsync and
// acknowledges it with one ack, so small notifications are cheaper in
// larger frames. Twelve of the largest (3 KB, base64-encoded) fit.
const (
	frameBudget = wire.MaxFrameSize - 1024
	maxBatch    = 256
)

// encodedSize is an upper bound of a notification's size in a notify frame:
// its base64 body, its strings and the JSON around them (the field names,
// numbers up to 20 digits and the accepted_at time).
func encodedSize(q store.Queued) int {
	return (len(q.Body)+2)/3*4 + len(q.ChannelID) + len(q.Kind) + len(q.MessageID) + 128
}

// due takes the notifications to send now. Nothing is sent until one is
// due; then every unsent notification goes, so the radio wakes once. It
// returns the next deadline among those still held.
func (sess *session) due(now time.Time) (batches [][]wire.Notification, next time.Time, err error) {
	sess.qmu.Lock()
	defer sess.qmu.Unlock()
	sess.mu.Lock()
	sent := sess.sent
	inbox, resync := sess.inbox, sess.resyncing
	sess.inbox, sess.resyncing = nil, false
	sess.mu.Unlock()
	if sess.primed && !resync {
		sess.unsent = mirror(sess.unsent, inbox, sent)
		if len(sess.unsent) > maxMirrored {
			sess.primed, sess.unsent = false, nil
		}
	}
	if !sess.primed || resync {
		// The inbox was taken before this read, so everything in it is in
		// the read; commits told meanwhile wait in the next inbox and are
		// told apart by their numbers.
		read, err := sess.srv.cfg.Store.Pending(sess.ctx, sess.id, sent)
		if err != nil {
			sess.primed, sess.unsent = false, nil
			return nil, time.Time{}, err
		}
		sess.unsent, sess.primed = read, true
	}
	// A Web Push message whose TTL ended while it waited in the copy is
	// never sent (RFC 8030 §5.2); the store hides it from reads already.
	sess.unsent = slices.DeleteFunc(sess.unsent, func(q store.Queued) bool { return expired(q, now) })
	// Held messages (urgency.go) wait for a lower minimum, not a time.
	unsent, held := split(sess.unsent, sess.minimumUrgency())
	if len(unsent) == 0 {
		return nil, time.Time{}, nil
	}
	var earliest time.Time
	for _, q := range unsent {
		if earliest.IsZero() || q.DueAt.Before(earliest) {
			earliest = q.DueAt
		}
	}
	if earliest.After(now) {
		return nil, earliest, nil
	}
	left, moved, err := sess.moveHeld(unsent, held)
	if err != nil {
		sess.primed, sess.unsent = false, nil
		return nil, time.Time{}, err
	}
	batches = frames(unsent)
	sess.unsent = left
	if moved {
		// The moved ones come back through the inbox's next read.
		sess.primed, sess.unsent = false, nil
	}
	// Only the writer moves sent, and before writing: an ack that races
	// the write is for a seq the device can only have if it was written.
	at := sess.srv.cfg.Clock.Now()
	sess.srv.metrics.deliveredAt(unsent, at)
	sess.mu.Lock()
	sess.sent = unsent[len(unsent)-1].Seq
	sess.wroteLocked(sess.sent, at)
	sess.mu.Unlock()
	return batches, time.Time{}, nil
}

// expired says whether q's TTL has ended at now.
func expired(q store.Queued, now time.Time) bool {
	return !q.ExpiresAt.IsZero() && !q.ExpiresAt.After(now)
}

// frames splits notifications, in order, into notify frames.
func frames(unsent []store.Queued) [][]wire.Notification {
	var batches [][]wire.Notification
	var cur []wire.Notification
	size := 0
	for _, q := range unsent {
		qs := encodedSize(q)
		if len(cur) == maxBatch || len(cur) > 0 && size+qs > frameBudget {
			batches = append(batches, cur)
			cur, size = nil, 0
		}
		n := wire.Notification{Seq: q.Seq, ChannelID: q.ChannelID, Kind: q.Kind, Class: q.Class, MessageID: q.MessageID, Body: q.Body}
		if !q.AcceptedAt.IsZero() {
			n.AcceptedAt = q.AcceptedAt.UnixMilli()
		}
		cur = append(cur, n)
		size += qs
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches
}

// maxMirrored bounds the queue a session keeps a copy of; past it (a
// device holding many delayed notifications) the writer reads the store.
const maxMirrored = 64

// committed hands a notification the store has just committed to the
// session and wakes the writer, which adds it to its copy of the queue
// (mirror). It runs on the store's committer, in sequence order for each
// device, so it takes only mu, which nothing holds while waiting: never
// qmu, which the writer holds while it reads the store.
func (sess *session) committed(q store.Queued) {
	sess.mu.Lock()
	switch {
	case sess.resyncing:
		// The writer reads the store anyway.
	case len(sess.inbox) < maxMirrored:
		sess.inbox = append(sess.inbox, q)
	default:
		sess.inbox, sess.resyncing = nil, true
	}
	sess.wake = true
	sess.mu.Unlock()
	sess.kick()
}

// resync makes the writer read the store again rather than trust its copy,
// for a store that may have missed telling of commits.
func (sess *session) resync() {
	sess.mu.Lock()
	sess.inbox, sess.resyncing, sess.wake = nil, true, true
	sess.mu.Unlock()
	sess.kick()
}

// mirror adds the committed notifications to the copy of the queue above
// sent, in order.
func mirror(unsent, committed []store.Queued, sent uint64) []store.Queued {
	for _, q := range committed {
		if q.Merged != 0 {
			// The store deleted the tile update this one replaced.
			unsent = slices.DeleteFunc(unsent, func(u store.Queued) bool { return u.Seq == q.Merged })
		}
		last := sent
		if n := len(unsent); n > 0 {
			last = unsent[n-1].Seq
		}
		// A number at or below last was already read from the store.
		if q.Seq > last {
			unsent = append(unsent, q)
		}
	}
	return unsent
}
