package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/server/store"
)

// Outcomes of named notifications live in the bucket <prefix>_outcomes
// under o.<channel>.<hash of message id>, forgotten by the bucket's TTL
// (store.OutcomeRetention); each node remembers at most MaxOutcomes of a
// channel a UTC day (allowOutcomes).

type outcomeRec struct {
	State store.MessageState `json:"s"`
	At    int64              `json:"a"`
}

func outcomeKey(channelID, messageID string) string {
	return "o." + token(channelID) + "." + hash(messageID)
}

func (s *Store) remember(ctx context.Context, channelID, messageID string, state store.MessageState, at time.Time) error {
	b, _ := json.Marshal(outcomeRec{State: state, At: at.UnixMilli()})
	if _, err := s.outcomes.Put(ctx, outcomeKey(channelID, messageID), b); err != nil {
		return unavailable("remember outcome", err)
	}
	return nil
}

// allowOutcomes takes room for up to k outcomes of the channel in this
// node's count for the UTC day and returns how many it took. The count is
// the node's own, like the per-address rates: one shared by the nodes
// cost a read and a compare-and-set of a replicated key at every
// acknowledgement, and what it bounds (a sender filling the bucket) is
// still bounded, at MaxOutcomes per node.
func (s *Store) allowOutcomes(_ context.Context, channelID string, k int) (int, error) {
	day := s.now().UTC().Unix() / 86400
	s.outMu.Lock()
	defer s.outMu.Unlock()
	if day != s.outDay || s.outCount == nil {
		s.outDay, s.outCount = day, map[string]int{}
	}
	take := min(k, s.maxOutcomes-s.outCount[channelID])
	if take <= 0 {
		return 0, nil
	}
	s.outCount[channelID] += take
	return take, nil
}

// deliveredUpTo records the device's named notifications up to seq as
// delivered, within each channel's bound. It runs before the purge that
// deletes them: a crash between the two leaves them queued and recorded,
// and a status reads the queue first.
func (s *Store) deliveredUpTo(ctx context.Context, deviceID string, seq uint64) error {
	subj := s.subjectOf(deviceID)
	now := time.Now()
	byChannel := map[string][]string{}
	var order []string
	for next := uint64(1); next <= seq; {
		var m *jetstream.RawStreamMsg
		s.ackReads.Add(1)
		err := retry(ctx, func(ctx context.Context) error {
			var err error
			m, err = s.queue.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subj))
			return err
		})
		if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && m.Sequence > seq) {
			break
		}
		if err != nil {
			return unavailable("ack", err)
		}
		if id := m.Header.Get(hMessage); id != "" {
			ch := m.Header.Get(hChannel)
			if _, ok := byChannel[ch]; !ok {
				order = append(order, ch)
			}
			byChannel[ch] = append(byChannel[ch], id)
		}
		if m.Sequence == seq {
			break // nothing more up to seq: spares a read per ack
		}
		next = m.Sequence + 1
	}
	for _, ch := range order {
		ids := byChannel[ch]
		n, err := s.allowOutcomes(ctx, ch, len(ids))
		if err != nil {
			return err
		}
		for _, id := range ids[:n] {
			if err := s.remember(ctx, ch, id, store.MessageDelivered, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// named returns the channel's queued notifications carrying messageID.
func (s *Store) named(ctx context.Context, deviceID, channelID, messageID string) ([]store.Queued, error) {
	// Not through Pending: a status or a cancel is no session's read,
	// and must leave no notes (named.go) for a device held elsewhere.
	qs, _, err := s.pending(ctx, deviceID, 0)
	if err != nil {
		return nil, err
	}
	var out []store.Queued
	for _, q := range qs {
		if q.ChannelID == channelID && q.MessageID == messageID {
			out = append(out, q)
		}
	}
	return out, nil
}

// MessageStatus reads the device's queue, then the outcomes.
func (s *Store) MessageStatus(ctx context.Context, deviceID, channelID, messageID string) (store.MessageStatus, error) {
	if err := s.check(); err != nil {
		return store.MessageStatus{}, err
	}
	if messageID == "" {
		return store.MessageStatus{}, notFound("message")
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	qs, err := s.named(ctx, deviceID, channelID, messageID)
	if err != nil {
		return store.MessageStatus{}, err
	}
	if n := len(qs); n > 0 {
		q := qs[n-1]
		if !q.ExpiresAt.IsZero() && !q.ExpiresAt.After(s.now()) {
			// Past its TTL: never sent, and the stream deletes it soon.
			// Once it has, the message is unknown: JetStream's own expiry
			// leaves no outcome behind.
			return store.MessageStatus{State: store.MessageExpired, At: q.ExpiresAt}, nil
		}
		return store.MessageStatus{State: store.MessageQueued, At: q.AcceptedAt, Seq: q.Seq, Urgency: q.Urgency}, nil
	}
	e, err := get(ctx, s.outcomes, outcomeKey(channelID, messageID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return store.MessageStatus{}, notFound("message")
	}
	if err != nil {
		return store.MessageStatus{}, unavailable("message status", err)
	}
	var r outcomeRec
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return store.MessageStatus{}, fmt.Errorf("natsstore: outcome: %w", err)
	}
	return store.MessageStatus{State: r.State, At: time.UnixMilli(r.At)}, nil
}

// CancelMessage deletes the named notifications from the device's subject.
func (s *Store) CancelMessage(ctx context.Context, deviceID, channelID, messageID string) error {
	if err := s.check(); err != nil {
		return err
	}
	if messageID == "" {
		return notFound("message")
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	qs, err := s.named(ctx, deviceID, channelID, messageID)
	if err != nil {
		return err
	}
	deleted := 0
	for _, q := range qs {
		err := s.queue.DeleteMsg(ctx, q.Seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // acknowledged or cancelled meanwhile
		}
		if err != nil {
			return unavailable("cancel", err)
		}
		deleted++
	}
	if deleted == 0 {
		return notFound("message")
	}
	if n, err := s.allowOutcomes(ctx, channelID, 1); err != nil || n == 0 {
		return err // cancelled, past the bound not remembered
	}
	return s.remember(ctx, channelID, messageID, store.MessageCancelled, time.Now())
}

// requeueWaits is how many times a requeue that finds its device's queue
// full, the place above the depth taken, waits for it before it deletes
// the original first.
const requeueWaits = 4

// Requeue publishes a copy of the notification under a new number, then
// deletes the original; a crash between the two leaves both, and the
// device, which skips nothing by number, is sent it twice at worst.
func (s *Store) Requeue(ctx context.Context, deviceID string, seq uint64) (store.Queued, error) {
	if err := s.check(); err != nil {
		return store.Queued{}, err
	}
	if seq > store.MaxSeq {
		return store.Queued{}, fmt.Errorf("natsstore: requeue %d: %w", seq, store.ErrSeqRange)
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var m *jetstream.RawStreamMsg
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		m, err = s.queue.GetMsg(ctx, seq)
		return err
	})
	if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && m.Subject != s.subjectOf(deviceID)) {
		return store.Queued{}, notFound("queued notification")
	}
	if err != nil {
		return store.Queued{}, unavailable("requeue", err)
	}
	q, err := decode(m.Sequence, m.Header, m.Data)
	if err != nil {
		return store.Queued{}, err
	}
	q.Merged = seq
	if q.TileKey != "" {
		return s.requeueKeyed(ctx, q)
	}
	n, err := s.publish(ctx, q)
	for try := 1; errors.Is(err, store.ErrQueueFull) && try <= requeueWaits; try++ {
		// The place above the depth is a replacement's for a moment
		// (bound.go): wait for it rather than take the original out
		// before its copy is in.
		if perr := s.pause(ctx, try); perr != nil {
			break
		}
		n, err = s.publish(ctx, q)
	}
	deleted := false
	if errors.Is(err, store.ErrQueueFull) {
		// Still full: the original makes room for its copy; a crash
		// before the copy is published loses it, as a cancel would.
		if err := s.queue.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return store.Queued{}, unavailable("requeue", err)
		}
		deleted = true
		if n, err = s.publish(ctx, q); err != nil {
			// Another enqueue took the room meanwhile: the stream's own
			// bound is above the service's depth, so this is rare.
			s.log.Error("natsstore: a notification taken out to move could not be put back", "device", deviceID, "seq", seq, "err", err)
		}
	}
	if err != nil {
		return store.Queued{}, err
	}
	if !deleted {
		if err := s.queue.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			s.log.Warn("natsstore: deleting a requeued notification", "device", deviceID, "seq", seq, "err", err)
		}
	}
	q.Seq = n
	s.waitPassed(ctx, n)
	return q, nil
}

// requeueKeyed moves a tile update or Topic message the way a merge
// replaces one: in its device's turn, and only if the subject still ends
// where it was read, so that a merge of its key on another node and the
// move never both leave a copy. If an update of the key replaced it (the
// older entry is deleted just after), it is no longer queued: moving it
// would queue the stale update after the one that replaced it.
func (s *Store) requeueKeyed(ctx context.Context, q store.Queued) (store.Queued, error) {
	seq := q.Merged
	unlock, err := s.merging.lock(ctx, q.DeviceID)
	if err != nil {
		return store.Queued{}, unavailable("requeue", err)
	}
	defer unlock()
	full := 0
	for try := 0; ; try++ {
		if try > 0 {
			if err := s.pause(ctx, try); err != nil {
				return store.Queued{}, unavailable("requeue", fmt.Errorf("the device's queue changed under %d attempts: %w", try, err))
			}
		}
		err := retry(ctx, func(ctx context.Context) error {
			_, err := s.queue.GetMsg(ctx, seq)
			return err
		})
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return store.Queued{}, notFound("queued notification")
		}
		if err != nil {
			return store.Queued{}, unavailable("requeue", err)
		}
		above, seqs, err := s.pending(ctx, q.DeviceID, seq)
		if err != nil {
			return store.Queued{}, err
		}
		for _, a := range above {
			if a.TileKey == q.TileKey && a.Merged == seq {
				return store.Queued{}, notFound("queued notification")
			}
		}
		n, err := s.publish(ctx, q, jetstream.WithExpectLastSequencePerSubject(max(lastOf(seqs, 0), seq)))
		if isWrongLast(err) {
			continue
		}
		if errors.Is(err, store.ErrQueueFull) && full < requeueWaits {
			// Another node's replacement may free the place above the
			// depth in a moment (this node's wait for s.merging).
			full++
			continue
		}
		if errors.Is(err, store.ErrQueueFull) {
			// Still full: the original makes room for its copy, as
			// any other notification's does.
			if err := retry(ctx, func(ctx context.Context) error { return s.queue.DeleteMsg(ctx, seq) }); err != nil &&
				!errors.Is(err, jetstream.ErrMsgNotFound) && !seqGone(err) {
				return store.Queued{}, unavailable("requeue", err)
			}
			n, err = s.publish(ctx, q)
			if err != nil {
				s.log.Error("natsstore: a notification taken out to move could not be put back", "device", q.DeviceID, "seq", seq, "err", err)
				return store.Queued{}, err
			}
		} else if err != nil {
			return store.Queued{}, err
		} else if err := retry(ctx, func(ctx context.Context) error { return s.queue.DeleteMsg(ctx, seq) }); err != nil &&
			!errors.Is(err, jetstream.ErrMsgNotFound) && !seqGone(err) {
			s.log.Warn("natsstore: deleting a requeued notification", "device", q.DeviceID, "seq", seq, "err", err)
		}
		q.Seq = n
		s.waitPassed(ctx, n)
		return q, nil
	}
}
