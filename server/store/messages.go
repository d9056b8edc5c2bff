package store

import (
	"context"
	"time"
)

// OutcomeRetention is how long a store remembers what became of a named
// notification once it has left the queue. A day: a sender that polls a
// message's status does so within minutes or hours, a sender's own retries
// (and a VAPID token, RFC 8292 §2) live at most a day, and with the daily
// quota it bounds what one channel makes the service remember to about a
// day's quota.
const OutcomeRetention = 24 * time.Hour

// MaxOutcomesPerChannel bounds the outcomes a store remembers for one
// channel at a time, whatever its quota (an authenticated channel has
// none): past it, notifications still leave the queue but their outcome
// is not remembered, and their status is unknown. A cluster's nodes count
// it each on their own, so it bounds each node's share.
const MaxOutcomesPerChannel = 1000

// MessageState is what became of a notification a sender named with a
// message id.
type MessageState string

// The states a notification's status may be in.
const (
	// MessageQueued: accepted and not yet applied by the device (held,
	// waiting for its class's deadline, or sent and not acknowledged).
	MessageQueued MessageState = "queued"
	// MessageDelivered: the device acknowledged it, so it was applied.
	MessageDelivered MessageState = "delivered"
	// MessageCancelled: the sender deleted it before delivery.
	MessageCancelled MessageState = "cancelled"
	// MessageExpired: it outlived its time to live undelivered.
	MessageExpired MessageState = "expired"
)

// MessageStatus is a named notification's state and when it entered it
// (accepted, acknowledged, cancelled or expired).
type MessageStatus struct {
	State MessageState
	At    time.Time
	// Seq and Urgency are set while it is queued.
	Seq     uint64
	Urgency int
}

// Messages is the part of the Store that answers senders about the
// notifications they named, and moves notifications a device holds back.
type Messages interface {
	// MessageStatus reports the newest notification on the channel (of
	// device deviceID) carrying messageID: queued if it is, else the
	// outcome remembered for it; ErrNotFound if neither (never named,
	// forgotten after OutcomeRetention, or past MaxOutcomesPerChannel).
	// Ack records MessageDelivered for every notification with a message
	// id it deletes, in the same step.
	MessageStatus(ctx context.Context, deviceID, channelID, messageID string) (MessageStatus, error)
	// CancelMessage deletes the channel's queued notifications carrying
	// messageID and remembers them as cancelled, at the store's own time
	// (by which it forgets outcomes); ErrNotFound if none is queued.
	CancelMessage(ctx context.Context, deviceID, channelID, messageID string) error
	// Requeue moves a queued notification to a new number above every
	// number the device has been given, so that a session may send later
	// notifications past one the device holds back (a device acknowledges
	// cumulatively). The OnCommitted function is told of it like an
	// Enqueue, with Merged set to its old number. ErrNotFound if it is no
	// longer queued (a tile update or Topic message that a later one of its
	// key replaced is not).
	Requeue(ctx context.Context, deviceID string, seq uint64) (Queued, error)
}
