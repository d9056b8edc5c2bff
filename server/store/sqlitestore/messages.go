package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/heraldpush/herald/server/store"
)

// forgetEvery is how often, by the store's clock, the committer deletes
// outcomes past their retention: reads filter them out anyway, so this only
// bounds the table, and a statement in every transaction would lengthen the
// commits senders wait for.
const forgetEvery = time.Second

// forget deletes outcomes past their retention, at most once per
// forgetEvery and before anything in the transaction records one, so the
// bound per channel counts only outcomes still kept.
func (s *Store) forget(ctx context.Context, g *groupTx) error {
	if !s.forgotAt.IsZero() && g.now.Sub(s.forgotAt) < forgetEvery && !g.now.Before(s.forgotAt) {
		return nil
	}
	res, err := g.st(ctx, g.stmt.forget).ExecContext(ctx, g.now.Add(-store.OutcomeRetention).UnixMilli())
	if err != nil {
		return err
	}
	s.forgotAt = g.now
	if n, _ := res.RowsAffected(); n > 0 {
		// A channel the notes hold at its bound may be below it now.
		g.notes.recount()
	}
	return nil
}

// delivered records the device's named notifications up to seq, named by
// the notes, as delivered, in the transaction that deletes them.
func (g *groupTx) delivered(ctx context.Context, device string, seq uint64, named []namedNote) error {
	below, err := g.notes.belowBound(ctx, g, named)
	if err != nil {
		return err
	}
	if below {
		_, err = g.st(ctx, g.stmt.deliveredUncounted).ExecContext(ctx, g.now.UnixMilli(), device, seq)
	} else {
		_, err = g.st(ctx, g.stmt.delivered).ExecContext(ctx, g.now.UnixMilli(), device, seq, store.MaxOutcomesPerChannel)
	}
	if err != nil {
		return err
	}
	g.notes.recorded(named)
	return nil
}

// MessageStatus reports the newest notification on the channel carrying
// messageID: queued, or its remembered outcome.
func (s *Store) MessageStatus(ctx context.Context, deviceID, channelID, messageID string) (store.MessageStatus, error) {
	if messageID == "" {
		return store.MessageStatus{}, fmt.Errorf("sqlitestore: message status: %w", ErrNotFound)
	}
	st := store.MessageStatus{State: store.MessageQueued}
	var at, exp int64
	err := s.rd.QueryRowContext(ctx, `SELECT seq, accepted_at, urgency, expires_at FROM queue
		WHERE device_id = ? AND channel_id = ? AND message_id = ? ORDER BY seq DESC LIMIT 1`, deviceID, channelID, messageID).
		Scan(&st.Seq, &at, &st.Urgency, &exp)
	if err == nil {
		st.At = time.UnixMilli(at)
		if exp != 0 && exp <= s.now().UnixMilli() {
			// Past its TTL and never to be sent, though not swept yet.
			st = store.MessageStatus{State: store.MessageExpired, At: time.UnixMilli(exp)}
		}
		return st, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return store.MessageStatus{}, fmt.Errorf("sqlitestore: message status: %w", err)
	}
	st = store.MessageStatus{}
	err = s.rd.QueryRowContext(ctx, `SELECT state, at FROM message_outcomes WHERE channel_id = ? AND message_id = ? AND at >= ?`,
		channelID, messageID, s.now().Add(-store.OutcomeRetention).UnixMilli()).Scan(&st.State, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return store.MessageStatus{}, fmt.Errorf("sqlitestore: message %s: %w", messageID, ErrNotFound)
	}
	if err != nil {
		return store.MessageStatus{}, fmt.Errorf("sqlitestore: message status: %w", err)
	}
	st.At = time.UnixMilli(at)
	return st, nil
}

// CancelMessage deletes the channel's queued notifications carrying
// messageID and remembers them as cancelled.
func (s *Store) CancelMessage(ctx context.Context, deviceID, channelID, messageID string) error {
	if messageID == "" {
		return fmt.Errorf("sqlitestore: cancel: %w", ErrNotFound)
	}
	r := &cancelReq{device: deviceID, channel: channelID, message: messageID, done: make(chan struct{})}
	if err := s.submit(ctx, r, r.done); err != nil {
		return fmt.Errorf("sqlitestore: cancel: %w", err)
	}
	if r.err != nil {
		return fmt.Errorf("sqlitestore: cancel: %w", r.err)
	}
	return nil
}

type cancelReq struct {
	device, channel, message string
	err                      error
	done                     chan struct{}
}

func (r *cancelReq) apply(ctx context.Context, g *groupTx) error {
	r.err = nil
	res, err := g.tx.ExecContext(ctx, `DELETE FROM queue WHERE device_id = ? AND channel_id = ? AND message_id = ?`, r.device, r.channel, r.message)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		r.err = ErrNotFound
		return nil
	}
	// The bound per channel holds here too: past it the cancel is done
	// but not remembered.
	if _, err = g.tx.ExecContext(ctx, `INSERT OR REPLACE INTO message_outcomes (channel_id, message_id, state, at)
		SELECT ?, ?, 'cancelled', ? WHERE (SELECT count(*) FROM message_outcomes WHERE channel_id = ?) < ?`,
		r.channel, r.message, g.now.UnixMilli(), r.channel, store.MaxOutcomesPerChannel); err != nil {
		return err
	}
	g.notes.recorded([]namedNote{{channel: r.channel}})
	return nil
}

func (r *cancelReq) finish(err error) {
	if err != nil {
		r.err = err
	}
	close(r.done)
}

// Requeue moves a queued notification to the device's next number.
func (s *Store) Requeue(ctx context.Context, deviceID string, seq uint64) (Queued, error) {
	if seq > MaxSeq {
		return Queued{}, fmt.Errorf("sqlitestore: requeue %d: %w", seq, ErrSeqRange)
	}
	r := &requeueReq{device: deviceID, seq: seq, done: make(chan struct{})}
	if err := s.submit(ctx, r, r.done); err != nil {
		return Queued{}, fmt.Errorf("sqlitestore: requeue: %w", err)
	}
	if r.err != nil {
		return Queued{}, fmt.Errorf("sqlitestore: requeue: %w", r.err)
	}
	return r.q, nil
}

type requeueReq struct {
	device string
	seq    uint64
	q      Queued
	err    error
	done   chan struct{}
}

func (r *requeueReq) apply(ctx context.Context, g *groupTx) error {
	r.err = nil
	q := Queued{DeviceID: r.device, Merged: r.seq}
	var acc, due, exp int64
	err := g.tx.QueryRowContext(ctx, `SELECT channel_id, kind, class, message_id, body, tile_key, accepted_at, due_at, expires_at, urgency
		FROM queue WHERE device_id = ? AND seq = ?`, r.device, r.seq).
		Scan(&q.ChannelID, &q.Kind, &q.Class, &q.MessageID, &q.Body, &q.TileKey, &acc, &due, &exp, &q.Urgency)
	if errors.Is(err, sql.ErrNoRows) {
		r.err = ErrNotFound
		return nil
	}
	if err != nil {
		return err
	}
	q.AcceptedAt, q.DueAt = time.UnixMilli(acc), time.UnixMilli(due)
	if exp != 0 {
		q.ExpiresAt = time.UnixMilli(exp)
	}
	if q.Seq, _, err = g.notes.seqs(ctx, g, r.device); err != nil {
		return err
	}
	if q.Seq > MaxSeq {
		r.err = ErrSeqRange
		return nil
	}
	if _, err := g.st(ctx, g.stmt.remove).ExecContext(ctx, r.device, r.seq); err != nil {
		return err
	}
	if _, err := g.st(ctx, g.stmt.bumpSeq).ExecContext(ctx, q.Seq, r.device); err != nil {
		return err
	}
	if _, err := g.st(ctx, g.stmt.insert).ExecContext(ctx, q.DeviceID, q.Seq, q.ChannelID, q.Kind, q.Class, q.MessageID, q.Body, q.TileKey,
		q.AcceptedAt.UnixMilli(), q.DueAt.UnixMilli(), expiryMillis(q.ExpiresAt), q.Urgency); err != nil {
		return err
	}
	g.notes.numbered(q)
	r.q = q
	return nil
}

func (r *requeueReq) stored() (Queued, bool) { return r.q, r.err == nil }

func (r *requeueReq) finish(err error) {
	if err != nil {
		r.err = err
	}
	close(r.done)
}
