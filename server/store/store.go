// Package store is the notification service's model (devices, channels and
// the notifications queued for devices), the Store contract every backend
// of the service keeps, and the machinery the backends share. Each backend
// is a package of its own: sqlitestore (SQLite on one node) and natsstore
// (NATS JetStream, shared by the nodes of a cluster); storetest is the
// contract suite both pass. Package server imports only this one, and the
// mains pick the backend. It has no dependencies beyond the standard
// library (and the repository's clock), so naming the model costs a binary
// nothing and needs no cgo.
//
// Written once here for both backends: Lazy (what AckLater and TouchLater
// hold until applied), TokenCache (channels by URI token, for a backend
// every change goes through), OutcomeRetention and MaxOutcomesPerChannel,
// Observed (every call timed, for the metrics), and the Runner and
// CommitReporter interfaces a backend's background work and commit
// figures are reached through.
//
// # Ordering
//
// Each device has its own sequence of numbers. Enqueue gives every
// notification it stores a number above every number the device has been
// given before, so the numbers a device receives are increasing. They need
// not be contiguous: a backend may skip numbers (a replicated log numbers
// all devices' notifications together), and a tile update merged into a
// queued one takes a new number while the one it replaced is gone. A device
// and the service rely only on "higher means later".
//
// What Pending returns is everything queued above a number, in order, with
// no hole that a later commit could fill: once Enqueue has returned a
// number, no notification with a lower number is stored for that device
// afterwards. And Pending sees every notification whose commit has been
// told to the OnCommitted function before Pending was called (it never
// reads a replica that lags behind the commits it has told of). The
// session's copy of a queue depends on both.
//
// # Durability
//
// When Enqueue returns nil the notification is durable: it survives the
// crash of the process (SQLite with a full fsync) or of any one server of a
// replicated backend. The service answers a sender "Received" only then.
// Ack deletes up to a number durably; AckLater may lose a recent ack in a
// crash, which costs the device a resend it recognises by number, never a
// lost or repeated notification.
//
// # Commit notifications
//
// OnCommitted's function is told of every notification Enqueue stores, once
// it is durable and before that Enqueue returns, in sequence order for each
// device. One exception, for a backend shared by the nodes of a cluster
// (one that is also a Presence): when this node's record of presence
// said before the Enqueue that another node holds the device's session, the
// function may be told after Enqueue returns (still in order): it feeds
// only this node's sessions, and the device's is elsewhere; a session the
// device opens here afterwards holds it first (Hold), and reads its queue.
// It must not block: it runs on the backend's committer, and every
// other commit waits for it. A notification deleted before the committer
// reaches it (acknowledged, or replaced by a merge on another node) may go
// untold: there is nothing left to send. A backend that may have missed
// telling of some commits (a lost subscription) calls it with Resync, and
// the service reads every live device's queue again.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors a caller acts on. Backends wrap them with %w.
var (
	// ErrNotFound: the device or channel does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrExists: a device or channel with the same key is already there.
	ErrExists = errors.New("store: already exists")
	// ErrQueueFull: the device's queue is at EnqueueOptions.MaxDepth.
	ErrQueueFull = errors.New("store: queue full")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
	// ErrUnavailable: the backend cannot make a write durable now (a
	// replicated backend without quorum); the caller may retry later.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrSeqRange: a sequence number above MaxSeq.
	ErrSeqRange = errors.New("store: sequence number out of range")
)

// MaxSeq is the highest sequence number a backend stores or accepts in an
// ack. SQLite integers are signed 64-bit, database/sql refuses a uint64 at
// or above 2^63, and a next number must still fit above it.
const MaxSeq = 1<<63 - 2

// Device is a device enrolled with the service.
type Device struct {
	ID         string
	SecretHash []byte
	Source     string // the address it enrolled from
	CreatedAt  time.Time
	LastSeen   time.Time
	Power      string
	// AckedSeq is the highest number the device has acknowledged through
	// Ack (a backend may leave AckLater's out).
	AckedSeq uint64
	// NextSeq is above every number the device has been given, so a
	// device reporting a number at or above it is lying (or restored from
	// a database the service never saw). Numbers need not be contiguous:
	// it is not necessarily the number the next notification gets.
	NextSeq uint64
	// RetiredAt is when the device was retired (RetireDevice); zero if it
	// was not.
	RetiredAt time.Time
}

// Channel is one app's channel on one device.
type Channel struct {
	ID          string
	DeviceID    string
	App         string
	Name        string
	Token       string
	ServiceName string
	Toast       bool
	Tile        bool
	Domains     []string
	Pinned      []string
	CreatedAt   time.Time
	// VAPIDKey restricts the channel to Web Push senders that sign with
	// this application server key (RFC 8292 §4; unpadded base64url of the
	// uncompressed P-256 point); "" leaves it open.
	VAPIDKey string
}

// Queued is a notification the service has accepted and the device has not
// acknowledged yet.
type Queued struct {
	DeviceID   string
	Seq        uint64
	ChannelID  string
	Kind       string
	Class      int
	MessageID  string
	Body       []byte
	TileKey    string
	AcceptedAt time.Time
	DueAt      time.Time
	// Merged is the sequence number of the queued tile update this one
	// replaced, 0 if none (set by Enqueue), or the number a held
	// notification had before Requeue moved it.
	Merged uint64
	// ExpiresAt is when a Web Push message's TTL ends; zero for never.
	// Pending never returns a message at or past its expiry, and
	// DeleteExpired deletes it.
	ExpiresAt time.Time
	// Urgency is an mpns.Urgency (0: normal); a device whose minimum is
	// above it is not sent it (see messages.go).
	Urgency int
}

// Resync is what a backend passes to the OnCommitted function when it may
// have missed telling of commits: no device, no number.
var Resync = Queued{}

// IsResync reports whether q is Resync rather than a commit.
func IsResync(q Queued) bool { return q.DeviceID == "" && q.Seq == 0 }

// EnqueueOptions bound what Enqueue may do.
type EnqueueOptions struct {
	// MaxDepth is the most notifications a device's queue may hold; 0 means
	// no bound. A merge does not count against it.
	MaxDepth int
	// Merge, when set for a notification with a TileKey, is offered the
	// newest queued entry with the same key. If it returns ok, that entry
	// is deleted and the notification is stored with the merged body under
	// a new sequence number (see Store.Enqueue), so the queue keeps its
	// depth. It may be called more than once for one Enqueue (a backend
	// that retries on a concurrent change), so it must not have effects.
	Merge func(older Queued) (merged []byte, ok bool)
}

// Store is what the notification service needs from its database. Every
// method is safe for concurrent use. See the package comment for the
// ordering and durability every backend promises.
type Store interface {
	// CreateDevice enrols a device; ErrExists if its id is taken.
	CreateDevice(ctx context.Context, d Device) error
	// Device looks a device up by id; ErrNotFound if there is none.
	Device(ctx context.Context, id string) (Device, error)
	// DeviceStatus is Device for the notification path, which needs only
	// the device's power and last-seen: a replicated backend may answer
	// from a copy that lags other nodes' writes by moments (never this
	// store's own), and NextSeq is left zero.
	DeviceStatus(ctx context.Context, id string) (Device, error)
	// CountDevicesFromSource counts devices enrolled from one address.
	// Like CountChannels, a replicated backend may miss other nodes'
	// writes of the last moments, never this store's own.
	CountDevicesFromSource(ctx context.Context, source string) (int, error)
	// TouchDevice records when the device was last connected.
	TouchDevice(ctx context.Context, id string, seen time.Time) error
	// TouchLater is TouchDevice without waiting for it to be durable,
	// applied within moments (as AckLater): a crash may lose it. It never
	// moves last-seen back, so a later TouchDevice of the same device
	// stays whichever lands first. For a connecting device, whose
	// session's end writes last-seen durably again.
	TouchLater(id string, seen time.Time)
	// SetPower records the device's power level.
	SetPower(ctx context.Context, id, power string) error
	// RetireDevice refuses a device for good: its channels are deleted
	// (their URIs are not found from then on) and its queue emptied,
	// while the device and its key stay so that the service can prove the
	// refusal when it comes back. ErrNotFound for an unknown device.
	RetireDevice(ctx context.Context, id string, at time.Time) error
	// ExpiredDevices returns up to limit ids of devices last seen before
	// the time given.
	ExpiredDevices(ctx context.Context, before time.Time, limit int) ([]string, error)
	// DeleteDevice deletes a device with its channels and queue if it was
	// still last seen before seenBefore, and reports whether it did.
	DeleteDevice(ctx context.Context, id string, seenBefore time.Time) (bool, error)

	// ChannelByToken finds the channel a URI token names; ErrNotFound
	// once the token has been rotated or the channel deleted.
	ChannelByToken(ctx context.Context, token string) (Channel, error)
	Channel(ctx context.Context, id string) (Channel, error)
	ChannelByApp(ctx context.Context, deviceID, app string) (Channel, error)
	// CountChannels counts the device's channels: a replicated backend
	// may miss other nodes' creations and deletions of the last moments,
	// never this store's own.
	CountChannels(ctx context.Context, deviceID string) (int, error)
	// CreateChannel stores a new channel; ErrExists if the device has one
	// for the app already.
	CreateChannel(ctx context.Context, c Channel) error
	// SetChannelToken rotates a channel's URI token: the old one is not
	// found from then on.
	SetChannelToken(ctx context.Context, id, token string) error
	SetBindings(ctx context.Context, id string, toast, tile bool, domains, pinned []string) error
	// DeleteChannel removes a channel; its queued notifications stay until
	// acknowledged.
	DeleteChannel(ctx context.Context, id string) error

	// Enqueue durably appends q to its device's queue under a new, higher
	// sequence number and returns it as stored (Seq, Merged and, after a
	// merge, Body and DueAt set). ErrNotFound for an unknown device,
	// ErrQueueFull at MaxDepth.
	//
	// A tile update that opts.Merge merges with a queued one replaces it:
	// the older entry is deleted and the merged one takes a new number
	// rather than the older one's. A session may already have sent the
	// older entry; a new number can never have been sent, so the merged
	// state always reaches the device, and the worst a race can do is
	// apply the older update twice, which leaves a tile in the same state.
	// Updates of one key enqueued at once, on any number of nodes, leave
	// one entry: each merges into (or replaces) the one committed before
	// it. A backend that cannot settle a merge against concurrent changes
	// within the call's deadline fails it with ErrUnavailable; it never
	// queues the update unmerged beside the one it should have replaced.
	Enqueue(ctx context.Context, q Queued, opts EnqueueOptions) (Queued, error)
	// Pending returns the device's queued notifications numbered above
	// after, in order, leaving out those whose ExpiresAt has come (by the
	// backend's clock, which the service sets to its own) and any that a
	// later one it returns replaced (names in its Merged): a backend
	// that deletes a replaced entry after publishing its replacement
	// sends the device the replacement alone even when the delete was
	// never made.
	Pending(ctx context.Context, deviceID string, after uint64) ([]Queued, error)
	// Ack durably deletes the device's notifications up to seq and
	// records seq as acknowledged.
	Ack(ctx context.Context, deviceID string, seq uint64) error
	// AckLater is Ack without waiting for it to be durable.
	AckLater(deviceID string, seq uint64)
	// OnCommitted sets the function told of every commit (see the package
	// comment). Set it once, before the first Enqueue.
	OnCommitted(f func(Queued))
	// DeleteExpired deletes up to limit queued notifications whose
	// ExpiresAt has come, across all devices, and returns how many.
	DeleteExpired(ctx context.Context, limit int) (int, error)
	// QueueLength counts the notifications queued across all devices.
	QueueLength(ctx context.Context) (int64, error)
	// Messages: senders' view of their notifications, and held ones.
	Messages

	// Close releases the store; calls after it fail with ErrClosed.
	Close() error
}

// CurrentDevices is implemented by a backend whose Device call sees every
// commit it told the OnCommitted function of before the call began, in
// NextSeq too: one database that tells of a commit only once it is made
// (sqlitestore). The service then skips the first read of a returning
// device's queue when NextSeq says the device was never given a number
// above the last one it applied and no commit for the device was told
// since the Device call began (server/firstlook.go): a reconnect storm
// reads each device once, not twice. natsstore answers NextSeq from the
// stream's state as last read, which may lag its commits, and does not
// implement it; neither does a wrapper that does not forward it.
type CurrentDevices interface {
	// DevicesCurrent reports whether the promise above holds.
	DevicesCurrent() bool
}

// Presence tells the nodes of a cluster which one holds each device's
// live session, so that a device is on one node at a time and senders on
// any node learn whether it is connected. A single node needs none.
type Presence interface {
	// Hold records that this node now holds the device's session and
	// tells the node that held it before to let go (its OnTakeover
	// function). It returns a number that grows with every Hold of the
	// device, cluster-wide.
	Hold(ctx context.Context, deviceID string) (uint64, error)
	// Release records that this node no longer holds the device's
	// session, unless another node has taken it since.
	Release(ctx context.Context, deviceID string) error
	// HeldElsewhere reports whether a live node other than this one holds
	// the device's session.
	HeldElsewhere(ctx context.Context, deviceID string) (bool, error)
	// OnTakeover sets the function told that another node took the
	// device at the Hold numbered held; a session of this node from an
	// older Hold is to end. Set it once, before the first Hold.
	OnTakeover(f func(deviceID string, held uint64))
}

// Quota counts notifications per channel per UTC day across the nodes of
// a cluster, so a daily quota holds whichever nodes the sender reaches.
// A single node counts in memory and needs none.
type Quota interface {
	// Take counts one notification to the channel on day (days since
	// 1970-01-01 UTC) unless limit have been counted already, and reports
	// whether it counted it.
	Take(ctx context.Context, channelID string, day int64, limit int) (bool, error)
}
