package server

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

// sessionState is the rules of one device's session, with no socket, no
// lock and no goroutine: each step takes what happened (a frame read, a
// ping, the clock reaching a deadline) and says what to do about it (frames
// to write, the next time to look again, store writes that need no answer,
// or the close that ends the session). The runner (session.go) owns the
// connection and does what a step says; the store is reached only through
// queuePort, for the device's own queue. Tests drive it by tables
// (sessionstate_test.go), without sockets or a database.
type sessionState struct {
	id  string
	lim sessionLimits

	// sent is the highest seq written to the device. What is above it
	// comes from the store, never from a copy handed over by the accepting
	// request: the store promises (package store) that no lower number is
	// committed after a higher one, so what it holds has no hole a later
	// commit could fill, and a merged tile update replaced in the store
	// cannot be sent stale.
	sent     uint64
	acked    uint64 // the highest seq the device has acknowledged
	power    string
	urgency  mpns.Urgency // the device's minimum: lower ones are held back
	lastPing time.Time
	touched  time.Time // when last_seen was last written

	// ackBound is how long written notifications may stay unacknowledged;
	// unackedSince is when the oldest of those now outstanding was written
	// (zero when the device has acknowledged all it was sent), or when the
	// last ack that made progress came.
	ackBound     time.Duration
	unackedSince time.Time
	ackWait      ackWait // for the ack latency metric

	// replies answer requests, waiting for the writer.
	replies []any

	// primed says unsent is a copy of the device's queue above sent, read
	// from the store once and kept up from what the store's committer told
	// of since, so the writer need not read the store for every
	// notification.
	primed bool
	unsent []store.Queued
}

// sessionLimits are the service's rules that a session applies.
type sessionLimits struct {
	minHeartbeat time.Duration // pings closer than 9/10 of it end the session
	maxIdle      time.Duration // a silent connection is dropped after it
	touchEvery   time.Duration // how often a live session refreshes last_seen
}

func (s *Server) sessionLimits() sessionLimits {
	return sessionLimits{minHeartbeat: s.cfg.MinHeartbeat, maxIdle: s.cfg.MaxIdle, touchEvery: s.cfg.InactiveAfter / 8}
}

// queuePort is what a session reads and changes of its device's queue in
// the store (package store's contract, whose ordering promises hold here).
// Each call ends when the session does.
type queuePort interface {
	Pending(deviceID string, after uint64) ([]store.Queued, error)
	Requeue(deviceID string, seq uint64) (store.Queued, error)
}

// closeReason is how a session ends: its close frame.
type closeReason struct {
	code int
	text string
}

// maxReplies bounds the answers waiting for the writer: a device that
// sends requests faster than it reads the answers is cut off.
const maxReplies = 64

// defaultHeartbeat is the device's heartbeat when its hello does not say
// (docs/protocol.md, Keepalive).
const defaultHeartbeat = 4 * time.Minute

// ackGrace is added to the device's heartbeat for the unacknowledged bound:
// the device's own wait for its pong (15 s) and time to apply a full frame.
const ackGrace = 30 * time.Second

// ackBoundFor is how long what the service wrote may stay unacknowledged
// before it stops trusting the connection. A device that reads its link
// acknowledges a frame as soon as it has applied it; one whose link died
// silently finds out by its next heartbeat at the latest (a ping without a
// pong) and lets go. Past that nothing written on the connection will
// ever be acknowledged, and the device is no longer reachable through it.
// The heartbeat the device says is taken within the service's bounds:
// never below MinHeartbeat (it may not ping faster), never past MaxIdle
// (the read deadline ends a silent connection then anyway).
func ackBoundFor(heartbeatSeconds int, lim sessionLimits) time.Duration {
	hb := defaultHeartbeat
	if heartbeatSeconds > 0 {
		hb = time.Duration(heartbeatSeconds) * time.Second
	}
	hb = max(hb, lim.minHeartbeat)
	if lim.maxIdle > 0 {
		hb = min(hb, lim.maxIdle)
	}
	return hb + ackGrace
}

// started is what the runner does once a hello is accepted.
type started struct {
	savePower bool      // the hello's power level differs from the store's
	touch     time.Time // write last_seen (TouchLater) when not zero
	ack       uint64    // acknowledge up to it (AckLater) when not zero
	// nothingAbove: the device read gave the device no number above the
	// hello's last_seq, so nothing was queued above it as of that read
	// (the runner decides whether that is enough to skip the first read
	// of the queue: firstlook.go).
	nothingAbove bool
}

// newSessionState starts the session of the device dev after its hello h,
// at now.
func newSessionState(h *wire.Hello, dev store.Device, lim sessionLimits, now time.Time) (*sessionState, started) {
	st := &sessionState{id: dev.ID, lim: lim, sent: h.LastSeq, acked: h.LastSeq, power: dev.Power,
		urgency: wire.MinUrgency(h.Urgency), ackBound: ackBoundFor(h.Heartbeat, lim)}
	var do started
	// Most hellos repeat the level the store has: writing it again would
	// cost each of them a commit.
	if h.Power != "" && h.Power != dev.Power {
		st.power, do.savePower = h.Power, true
	}
	// Neither the touch nor the hello's ack is waited for: each would cost
	// every hello a commit, and a node taking over another's devices takes
	// thousands at once. Nothing depends on them being durable before the
	// welcome: while the session lives its device counts as connected
	// whatever last_seen says, and its end writes last_seen durably; the
	// writer sends only what is above the hello's last_seq, so the queue's
	// copy of what the device has applied is only trimmed by the ack (a
	// crash that loses it costs a resend the device skips by number). A
	// last_seen fresher than the session's own refresh period is not
	// written at all: a node taking back its devices after a restart finds
	// them all seen a moment ago, at their sessions' ends.
	st.touched = now
	switch {
	case now.Sub(dev.LastSeen) >= lim.touchEvery:
		do.touch = now
	case dev.LastSeen.Before(now):
		st.touched = dev.LastSeen // the refresh comes due from there
	}
	// Nor is an ack the store has already: a device that acknowledged
	// what it applied before it went away (as devices do) says the same
	// number again, and numbers are never given twice, so nothing at or
	// below AckedSeq is queued. A backend whose AckedSeq leaves lazy
	// acks out only has the ack written again.
	if h.LastSeq > dev.AckedSeq {
		do.ack = h.LastSeq
	}
	// NextSeq is above every number given (0: not read, as on enrolment).
	do.nothingAbove = dev.NextSeq > 0 && dev.NextSeq <= h.LastSeq+1
	return st, do
}

// primeEmpty starts the copy of the queue empty, so that the writer's
// first look does not read the store: the runner knows nothing is queued
// above sent, and that every commit from now on reaches it.
func (st *sessionState) primeEmpty() { st.primed, st.unsent = true, nil }

// step is what the runner does after a frame or a ping: write last_seen
// (touch, when not zero), acknowledge in the store (ack, when not zero),
// observe the ack latency (acked), serve a request and queue its answer
// (request), have the writer look at the queue (wake) or only wake one
// waiting for a deadline (nudge), publish the power level and minimum
// urgency for the accept path (published), or end the session (end).
type step struct {
	published   bool
	touch       time.Time
	ack         uint64
	acked       bool
	ackLatency  time.Duration
	request     any
	wake, nudge bool
	end         *closeReason
}

// frame handles one frame from the device, decoded, at now.
func (st *sessionState) frame(f any, now time.Time) step {
	var do step
	switch f := f.(type) {
	case *wire.Hello:
		do.end = &closeReason{wire.CloseProtocol, "hello sent twice"}
	case *wire.Ack:
		do.touch = st.touchDue(now)
		if f.Seq > st.sent {
			do.end = &closeReason{wire.CloseProtocol, "ack beyond what was sent"}
			return do
		}
		do.ackLatency, do.acked = st.ackWait.covered(f.Seq, now)
		if !st.unackedSince.IsZero() {
			if f.Seq >= st.sent {
				st.unackedSince = time.Time{}
				do.nudge = true // a writer waiting only for this ack may stop
			} else if f.Seq > st.acked {
				// Progress: the device reads this connection, and the
				// bound runs again from here.
				st.unackedSince = now
			}
		}
		st.acked = max(st.acked, f.Seq)
		// Not waited for: a lost ack only means a resend the device
		// skips by sequence number, and waiting would hold up this
		// device's reads for a commit.
		do.ack = f.Seq
	case *wire.State:
		st.power = f.Power
		u := wire.MinUrgency(f.Urgency)
		// A lower minimum may let held notifications go.
		do.wake = u < st.urgency
		st.urgency = u
		do.published = true
		do.request = f // saving the power level, answered with a result
	case *wire.Register, *wire.Unregister, *wire.Bind:
		do.request = f
	case browserRequest:
		// A browser's keepalive is a frame, not a websocket ping.
		do.touch = st.touchDue(now)
		do.request = f
	default:
		do.end = &closeReason{websocket.CloseInternalServerErr, "internal error"}
	}
	return do
}

// ping handles a websocket ping at now: it enforces the heartbeat floor
// and keeps last_seen fresh.
func (st *sessionState) ping(now time.Time) step {
	last := st.lastPing
	st.lastPing = now
	// A little slack, since the device's clock and ours drift apart.
	if !last.IsZero() && now.Sub(last) < st.lim.minHeartbeat*9/10 {
		return step{end: &closeReason{websocket.ClosePolicyViolation,
			"heartbeat more frequent than " + strconv.Itoa(int(st.lim.minHeartbeat/time.Second)) + "s"}}
	}
	return step{touch: st.touchDue(now)}
}

// touchDue says when last_seen is to be written now (zero: not yet). It
// is written at connect and disconnect too, but a service killed outright
// never writes the disconnect, and after a restart a device connected for
// longer than InactiveAfter would be answered 412 until it reconnects.
func (st *sessionState) touchDue(now time.Time) time.Time {
	if now.Sub(st.touched) < st.lim.touchEvery {
		return time.Time{}
	}
	st.touched = now
	return now
}

// reply queues the answer to a request for the writer; past maxReplies
// the device is cut off.
func (st *sessionState) reply(v any) *closeReason {
	if len(st.replies) >= maxReplies {
		return &closeReason{wire.CloseProtocol, "too many requests waiting for answers"}
	}
	st.replies = append(st.replies, v)
	return nil
}

// supersedes says whether a Hold numbered theirs, by another node of the
// cluster, supersedes this session's, numbered mine: then the device
// connected there after it connected here, and this session ends.
func supersedes(mine, theirs uint64) *closeReason {
	if mine >= theirs {
		return nil
	}
	return &closeReason{wire.CloseReplaced, "the device connected to another node"}
}

// errUnacknowledged ends a session whose device left what it was written
// unacknowledged past the bound.
var errUnacknowledged = errors.New("written notifications left unacknowledged")

// out is what the writer does next: the answers waiting, then the
// notifications due at now, in notify frames, and the time to look again
// (zero: nothing is waiting for a deadline). look says whether to look at
// the queue at all (something was committed, the minimum urgency dropped,
// or a deadline came); committed is what the store's committer told of
// since the last look, and resync that the store must be read instead.
// An error from the store ends the session (close 4001 with a delay
// within RetrySpread);
// errUnacknowledged ends it with 1001.
func (st *sessionState) out(now time.Time, look bool, committed []store.Queued, resync bool, q queuePort) (frames []any, next time.Time, err error) {
	frames = st.replies
	st.replies = nil
	if !st.unackedSince.IsZero() {
		deadline := st.unackedSince.Add(st.ackBound)
		if !now.Before(deadline) {
			return frames, time.Time{}, fmt.Errorf("%w for %v", errUnacknowledged, now.Sub(st.unackedSince).Round(time.Second))
		}
		next = deadline
	}
	if !look {
		return frames, next, nil
	}
	batches, due, err := st.due(now, committed, resync, q)
	if err != nil {
		return frames, time.Time{}, err
	}
	for _, b := range batches {
		frames = append(frames, wire.Notify{Type: wire.TypeNotify, Notifications: b})
	}
	if len(batches) > 0 && st.unackedSince.IsZero() {
		st.unackedSince = now
		next = now.Add(st.ackBound)
	}
	if !due.IsZero() && (next.IsZero() || due.Before(next)) {
		next = due
	}
	return frames, next, nil
}

// due takes the notifications to send now. Nothing is sent until one is
// due; then every unsent notification goes, so the radio wakes once. It
// returns the next deadline among those still held.
func (st *sessionState) due(now time.Time, committed []store.Queued, resync bool, q queuePort) (batches [][]wire.Notification, next time.Time, err error) {
	if st.primed && !resync {
		st.unsent = mirror(st.unsent, committed, st.sent)
		if len(st.unsent) > maxMirrored {
			st.primed, st.unsent = false, nil
		}
	}
	if !st.primed || resync {
		// What was committed before this read is in it; commits told
		// meanwhile come with the next look and are told apart by their
		// numbers.
		read, err := q.Pending(st.id, st.sent)
		if err != nil {
			st.primed, st.unsent = false, nil
			return nil, time.Time{}, err
		}
		st.unsent, st.primed = read, true
	}
	// A Web Push message whose TTL ended while it waited in the copy is
	// never sent (RFC 8030 §5.2); the store hides it from reads already.
	st.unsent = slices.DeleteFunc(st.unsent, func(q store.Queued) bool { return expired(q, now) })
	// Held messages (urgency.go) wait for a lower minimum, not a time.
	ready, held := split(st.unsent, int(st.urgency))
	if len(ready) == 0 {
		return nil, time.Time{}, nil
	}
	var earliest time.Time
	for _, q := range ready {
		if earliest.IsZero() || q.DueAt.Before(earliest) {
			earliest = q.DueAt
		}
	}
	if earliest.After(now) {
		return nil, earliest, nil
	}
	left, moved, err := st.moveHeld(ready, held, q)
	if err != nil {
		st.primed, st.unsent = false, nil
		return nil, time.Time{}, err
	}
	batches = frames(ready)
	st.unsent = left
	if moved {
		// The moved ones come back through the committer and the next read.
		st.primed, st.unsent = false, nil
	}
	// sent moves before the write: an ack that races the write is for a
	// seq the device can only have if it was written.
	st.sent = ready[len(ready)-1].Seq
	st.ackWait.wrote(st.sent, now)
	return batches, time.Time{}, nil
}

// written says whether the notification numbered seq has been written to
// the device (it may be applied, and only the device's ack says).
func (st *sessionState) written(seq uint64) bool { return seq <= st.sent }

// forget drops a cancelled notification from the copy of the queue.
func (st *sessionState) forget(channelID, messageID string) {
	st.unsent = slices.DeleteFunc(st.unsent, func(q store.Queued) bool { return q.ChannelID == channelID && q.MessageID == messageID })
}
