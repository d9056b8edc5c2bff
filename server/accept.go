package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server/store"
)

// Senders' protocols (MPNS, multicast, Web Push, the Matrix gateway) share
// one accept pipeline. Each protocol's file is a decoder, from its request
// to a submission, and a renderer, from accepted or a *senderRefusal to its
// answer; the pipeline (accept) does everything in between: the readiness
// gate, the channel lookup, the protocol's channel check, the in-flight
// slot, the device's state, the channel's limits, suppression, building
// the queued notification and enqueueing it. Refusals are values
// (refusals.go) that renderers tell apart by kind, never by text, so a
// new sender protocol is one file that builds submissions and renders the
// catalogue.

// submission is one notification for one channel, decoded from whatever
// protocol it came in.
type submission struct {
	token         string
	authenticated bool // came on the authenticated (https) path

	kind      mpns.Kind // store.Queued.Kind
	class     int
	messageID string
	body      []byte
	urgency   mpns.Urgency
	delay     time.Duration
	// expiry is when it stops being worth delivering, from the time it is
	// accepted; nil: never.
	expiry func(sub *submission, now time.Time) time.Time
	// nowOrNever: delivered only to a device connected now (Web Push TTL
	// 0); to a device that is away it is taken and dropped (refSuppressed).
	nowOrNever bool
	// merge, when set, builds the body of this submission merged into the
	// queued one with the same mergeKey (a tile, "" for the main tile; a
	// topic), or says the two cannot merge; nil replaces nothing.
	mergeKey string
	merge    func(sub *submission, ch store.Channel, older store.Queued) ([]byte, bool)

	// req and decoded are the request and the protocol's own reading of
	// it, for the hooks below. The hooks are plain functions, not
	// closures, so a submission costs no allocation but its own.
	req     *http.Request
	decoded any
	// checkChannel is the protocol's own check of the channel found (its
	// credentials, what the channel takes), before any slot is taken.
	checkChannel func(s *Server, sub *submission, ch store.Channel, now time.Time) error
	// deviceState: the device's power, connection and last-seen matter
	// (MPNS's X-DeviceConnectionStatus, its inactive devices and its
	// power rules); without it no store call is made for the device.
	deviceState bool
	// suppress says why the device would not take it given its channel
	// and power, or "".
	suppress func(sub *submission, ch store.Channel, power string) string
}

// accepted is a submission queued for its device.
type accepted struct {
	messageID string
	seq       uint64
	merged    uint64
	device    string // X-DeviceConnectionStatus; "" when not looked at
}

// readyGate is the gate every submission passes first: nil while the store
// takes notifications, else the refusal senders get (unavailable, with a
// Retry-After). A single-node store is ready once opened; a cluster's
// once NATS answers (ready.go).
func (s *Server) readyGate() error {
	if why := s.notReady(); why != "" {
		return s.unavailable(why)
	}
	return nil
}

// accept runs a submission through the pipeline: it is queued for its
// device, or refused with a *senderRefusal saying why.
func (s *Server) accept(ctx context.Context, sub *submission) (accepted, error) {
	if err := s.readyGate(); err != nil {
		return accepted{}, err
	}
	ch, err := s.cfg.Store.ChannelByToken(ctx, sub.token)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (ch.ServiceName != "") != sub.authenticated) {
		// A certificate channel on the open path, or the other way round,
		// is nobody's: it is reported exactly as a missing one.
		return accepted{}, refuse(refNoChannel, "no such channel")
	}
	if err != nil {
		s.log.Error("channel lookup failed", "err", err)
		return accepted{}, s.unavailable(errStoreUnavailable)
	}
	now := s.cfg.Clock.Now()
	if sub.checkChannel != nil {
		if err := sub.checkChannel(s, sub, ch, now); err != nil {
			return accepted{}, err
		}
	}
	// The slot is taken only now, for a notification to a channel that
	// exists: work the store will do.
	release, ok := s.guard.acquire()
	if !ok {
		return accepted{}, s.unavailable("too many requests in flight")
	}
	defer release()

	var device, power string
	if sub.deviceState {
		var err error
		if device, power, err = s.deviceState(ctx, ch, now); err != nil {
			return accepted{}, err
		}
	}
	if ref := s.guard.allowChannel(ch); ref != nil {
		ref.device = device
		return accepted{}, ref
	}
	if sub.suppress != nil {
		if why := sub.suppress(sub, ch, power); why != "" {
			return accepted{}, &senderRefusal{kind: refSuppressed, reason: why, device: device, messageID: sub.messageID}
		}
	}
	if sub.nowOrNever && !s.connected(ctx, ch.DeviceID) {
		s.log.Debug("message for now or never dropped: device away", "device", ch.DeviceID)
		return accepted{}, &senderRefusal{kind: refSuppressed, reason: "device away", device: device, messageID: sub.messageID}
	}

	q := store.Queued{
		DeviceID:   ch.DeviceID,
		ChannelID:  ch.ID,
		Kind:       string(sub.kind),
		Class:      sub.class,
		MessageID:  sub.messageID,
		Body:       sub.body,
		AcceptedAt: now,
		DueAt:      now.Add(sub.delay),
		Urgency:    int(sub.urgency),
	}
	opts := store.EnqueueOptions{MaxDepth: s.cfg.QueueDepth}
	if merge := sub.merge; merge != nil {
		q.TileKey = ch.ID + "\x00" + sub.mergeKey
		// A copy for the closure, so that only a merging submission
		// moves the channel to the heap.
		ch := ch
		opts.Merge = func(older store.Queued) ([]byte, bool) { return merge(sub, ch, older) }
	}
	if sub.expiry != nil {
		q.ExpiresAt = sub.expiry(sub, now)
		s.startExpiringMessages()
	}
	q, err = s.cfg.Store.Enqueue(ctx, q, opts)
	switch {
	case errors.Is(err, store.ErrQueueFull):
		return accepted{}, &senderRefusal{kind: refQueueFull, reason: "device queue full", device: device, retryAfter: s.guard.lim.RetryAfter}
	case err != nil:
		s.log.Error("enqueue failed", "device", ch.DeviceID, "err", err)
		return accepted{}, s.unavailable(errStoreUnavailable)
	}
	// The store's commit hook has handed it to the session already
	// (Server.committed).
	if s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.Debug("notification accepted", slog.String("device", ch.DeviceID), slog.Uint64("seq", q.Seq),
			slog.String("kind", q.Kind), slog.Uint64("merged", q.Merged))
	}
	return accepted{messageID: q.MessageID, seq: q.Seq, merged: q.Merged, device: device}, nil
}

// deviceState is the device's X-DeviceConnectionStatus and power level, or
// the refusal of a device that has been away too long. A connected
// device's session knows its power level; only an away device needs the
// store, for when it was last seen.
func (s *Server) deviceState(ctx context.Context, ch store.Channel, now time.Time) (device, power string, err error) {
	if sess := s.session(ch.DeviceID); sess != nil {
		return mpns.DeviceConnected, sess.powerLevel(), nil
	}
	dev, err := s.cfg.Store.DeviceStatus(ctx, ch.DeviceID)
	if err != nil {
		s.log.Error("device lookup failed", "device", ch.DeviceID, "err", err)
		return "", "", s.unavailable(errStoreUnavailable)
	}
	if p := s.cfg.Presence; p != nil {
		// Connected on another node of the cluster, whose session
		// refreshes last-seen only now and then: never inactive.
		if elsewhere, err := p.HeldElsewhere(ctx, ch.DeviceID); err != nil {
			s.log.Warn("presence lookup failed", "device", ch.DeviceID, "err", err)
		} else if elsewhere {
			return mpns.DeviceConnected, dev.Power, nil
		}
	}
	if now.Sub(dev.LastSeen) > s.cfg.InactiveAfter {
		return "", "", refuse(refInactive, "device inactive")
	}
	return mpns.DeviceTempDisconnected, dev.Power, nil
}

// connected says whether the device has a live session, here or on
// another node.
func (s *Server) connected(ctx context.Context, deviceID string) bool {
	if s.session(deviceID) != nil {
		return true
	}
	if p := s.cfg.Presence; p != nil {
		elsewhere, err := p.HeldElsewhere(ctx, deviceID)
		return err == nil && elsewhere
	}
	return false
}
