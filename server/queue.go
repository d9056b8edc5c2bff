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
