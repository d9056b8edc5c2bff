package natsstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/server/store"
)

// The queue: a subject per device on one stream, and the ordered
// consumer that tells this node of every commit.

// Headers of a queued notification.
const (
	hDevice   = "Herald-Device"
	hChannel  = "Herald-Channel"
	hKind     = "Herald-Kind"
	hClass    = "Herald-Class"
	hMessage  = "Herald-Message-Id"
	hTile     = "Herald-Tile-Key"
	hAccepted = "Herald-Accepted"
	hDue      = "Herald-Due"
	hMerged   = "Herald-Merged"
	hExpires  = "Herald-Expires"
	hUrgency  = "Herald-Urgency"
)

func (s *Store) message(q store.Queued) *nats.Msg {
	m := nats.NewMsg(s.subjectOf(q.DeviceID))
	m.Data = q.Body
	h := m.Header
	h.Set(hDevice, q.DeviceID)
	h.Set(hChannel, q.ChannelID)
	h.Set(hKind, q.Kind)
	h.Set(hClass, strconv.Itoa(q.Class))
	if q.MessageID != "" {
		h.Set(hMessage, q.MessageID)
	}
	if q.TileKey != "" {
		// Header values end at a line break; a tile key holds a NUL.
		h.Set(hTile, hex.EncodeToString([]byte(q.TileKey)))
	}
	h.Set(hAccepted, strconv.FormatInt(q.AcceptedAt.UnixMilli(), 10))
	h.Set(hDue, strconv.FormatInt(q.DueAt.UnixMilli(), 10))
	if q.Merged != 0 {
		h.Set(hMerged, strconv.FormatUint(q.Merged, 10))
	}
	if q.Urgency != 0 {
		h.Set(hUrgency, strconv.Itoa(q.Urgency))
	}
	if !q.ExpiresAt.IsZero() {
		h.Set(hExpires, strconv.FormatInt(q.ExpiresAt.UnixMilli(), 10))
		// JetStream counts TTLs in whole seconds on its own clock; a
		// second more keeps it from deleting before Pending stops
		// returning the message.
		secs := int64(q.ExpiresAt.Sub(s.now())/time.Second) + 1
		h.Set(jetstream.MsgTTLHeader, strconv.FormatInt(max(secs, 1), 10))
	}
	return m
}

func (s *Store) now() time.Time {
	if s.nowFunc != nil {
		return s.nowFunc()
	}
	return time.Now()
}

// DeleteExpired deletes nothing itself: every message with an expiry
// carries it as its JetStream TTL, and the stream deletes it then.
func (s *Store) DeleteExpired(ctx context.Context, limit int) (int, error) {
	return 0, s.check()
}

func decode(seq uint64, h nats.Header, data []byte) (store.Queued, error) {
	q := store.Queued{Seq: seq, DeviceID: h.Get(hDevice), ChannelID: h.Get(hChannel), Kind: h.Get(hKind), MessageID: h.Get(hMessage), Body: data}
	var err error
	num := func(name string) int64 {
		n, perr := strconv.ParseInt(h.Get(name), 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("natsstore: message %d: header %s: %w", seq, name, perr)
		}
		return n
	}
	q.Class = int(num(hClass))
	q.AcceptedAt, q.DueAt = time.UnixMilli(num(hAccepted)), time.UnixMilli(num(hDue))
	if v := h.Get(hMerged); v != "" {
		q.Merged, _ = strconv.ParseUint(v, 10, 64)
	}
	if h.Get(hUrgency) != "" {
		q.Urgency = int(num(hUrgency))
	}
	if v := h.Get(hExpires); v != "" {
		q.ExpiresAt = time.UnixMilli(num(hExpires))
	}
	if v := h.Get(hTile); v != "" {
		k, herr := hex.DecodeString(v)
		if herr != nil && err == nil {
			err = fmt.Errorf("natsstore: message %d: tile key: %w", seq, herr)
		}
		q.TileKey = string(k)
	}
	if q.DeviceID == "" && err == nil {
		err = fmt.Errorf("natsstore: message %d: no device", seq)
	}
	return q, err
}

// isFull reports a publish refused by MaxMsgsPerSubject.
func isFull(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && strings.Contains(ae.Description, "maximum messages per subject")
}

// seqGone reports a deletion of a message that is no longer there.
func seqGone(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == jetstream.JSErrCodeMessageNotFound || strings.Contains(err.Error(), "not found")
}

func isWrongLast(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// knownDevice checks the device exists: from the watched copy, which
// holds every device but those written in the last moments, else from
// the bucket.
func (s *Store) knownDevice(ctx context.Context, id string) error {
	if s.devCache.held(deviceKey(id)) {
		return nil
	}
	_, _, err := s.getDevice(ctx, id)
	return err
}

// Enqueue publishes q to its device's subject and returns once the stream
// has acknowledged it (on a quorum of its replicas) and this node's
// consumer has told the hook of it, unless another node holds the
// device's session (heldByOther): then once the stream has it.
func (s *Store) Enqueue(ctx context.Context, q store.Queued, opts store.EnqueueOptions) (store.Queued, error) {
	if err := s.check(); err != nil {
		return store.Queued{}, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := s.knownDevice(ctx, q.DeviceID); err != nil {
		return store.Queued{}, err
	}
	var (
		seq uint64
		err error
	)
	if q.TileKey != "" && opts.Merge != nil {
		q, err = s.mergeEnqueue(ctx, q, opts)
		seq = q.Seq
	} else {
		seq, err = s.publishPlain(ctx, q, s.depthFor(opts))
	}
	if err != nil {
		return store.Queued{}, err
	}
	q.Seq = seq
	if !s.heldByOther(q.DeviceID) {
		s.waitPassed(ctx, seq)
	}
	return q, nil
}

// heldByOther reports whether this node's copy of presence has known for
// a while (copyTrust) that another node holds the device's session. Then
// Enqueue need not wait for this node's consumer to pass the commit: the
// hook feeds only this node's sessions, and the device has none here. It
// is told of the commit all the same, in order, a moment later; a
// session the device opens here meanwhile has held it first (Hold, which
// makes the copy answer unknown until the watch brings the write) and
// reads its queue from the stream's leader, which has the commit.
func (s *Store) heldByOther(deviceID string) bool {
	p := s.presence
	if p == nil || p.copy == nil {
		return false
	}
	node, known := p.copy.get(deviceKey(deviceID))
	return known && node != p.node
}

func (s *Store) publish(ctx context.Context, q store.Queued, opts ...jetstream.PublishOpt) (uint64, error) {
	// A publish whose answer was lost in a failover is sent again under
	// the same id, and the stream takes it once.
	opts = append(opts, jetstream.WithMsgID(newID()))
	msg := s.message(q)
	var ack *jetstream.PubAck
	began := time.Now()
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		ack, err = s.js.PublishMsg(ctx, msg, opts...)
		return err
	})
	if f := s.onCommit.Load(); f != nil {
		// A full queue or a lost merge race is an answer, not a failed
		// commit.
		cerr := err
		if isFull(err) || isWrongLast(err) {
			cerr = nil
		}
		if cerr != nil || err == nil {
			(*f)(1, time.Since(began), cerr)
		}
	}
	switch {
	case err == nil:
		return ack.Sequence, nil
	case isFull(err):
		return 0, store.ErrQueueFull
	case isWrongLast(err):
		return 0, err
	default:
		return 0, unavailable("enqueue", err)
	}
}

// mergeEnqueue merges a tile update (or a Web Push message with a Topic,
// which replaces the queued one whole) into the newest queued one with
// the same key, or queues it alone if there is none or the merge is
// refused. Whichever it does is published only if the device's subject
// still ends where it was read (Nats-Expected-Last-Subject-Sequence, 0 for
// an empty subject), so two updates of one key never both see "nothing to
// merge with", and neither merges into an entry the other is replacing:
// each attempt that loses to a concurrent change reads the queue again and
// starts over, until the enqueue's deadline, when it fails as
// unavailable. It never falls back to publishing unchecked, which would
// leave two entries for one key. The older entry is deleted after the
// merged one is published, also in a full queue: the stream holds one
// message above the depth for it (bound.go), so no reader ever finds the
// key's entry gone. A crash between the two leaves both, which the device
// applies in order to the same end, and the next merge deletes the older.
func (s *Store) mergeEnqueue(ctx context.Context, q store.Queued, opts store.EnqueueOptions) (store.Queued, error) {
	depth := s.depthFor(opts)
	// This node's merges into one device's queue take turns, so that
	// only other nodes' (and plain enqueues) can conflict with one.
	unlock, err := s.merging.lock(ctx, q.DeviceID)
	if err != nil {
		return store.Queued{}, unavailable("merge", err)
	}
	defer unlock()
	for try := 0; ; try++ {
		if try > 0 {
			if err := s.pause(ctx, try); err != nil {
				return store.Queued{}, unavailable("merge", fmt.Errorf("the device's queue changed under %d attempts: %w", try, err))
			}
		}
		read := s.bounds.reading(s.subjectOf(q.DeviceID))
		queued, seqs, err := s.pending(ctx, q.DeviceID, 0)
		if err != nil {
			read(false, 0, 0)
			return store.Queued{}, err
		}
		read(true, lastOf(seqs, 0), len(seqs))
		m := q
		older := newestWithKey(queued, q.TileKey)
		if older != nil {
			body, ok := opts.Merge(*older)
			if ok {
				m.Body, m.Merged = body, older.Seq
				// The older update was promised by its deadline.
				if older.DueAt.Before(m.DueAt) {
					m.DueAt = older.DueAt
				}
			} else {
				older = nil
			}
		}
		if older == nil && len(seqs) >= depth {
			// A new entry needs a place below the depth; the one above
			// is a replacement's. What another replacement left to
			// delete, or an expired message, makes room.
			if s.deleteReplaced(ctx, q.DeviceID, queued, seqs) > 0 {
				continue
			}
			return store.Queued{}, store.ErrQueueFull
		}
		published := s.bounds.reading(s.subjectOf(q.DeviceID))
		seq, err := s.publish(ctx, m, jetstream.WithExpectLastSequencePerSubject(lastOf(seqs, 0)))
		published(err == nil, seq, len(seqs)+1)
		if errors.Is(err, store.ErrQueueFull) {
			// The place above the depth is taken: by another
			// replacement between its publish and its delete (or one a
			// crash stopped there), whose older entry its newer one
			// holds, so it is deleted here and the merge tried again.
			// With nothing such to delete the queue went past its depth
			// (plain enqueues on several nodes at once, bound.go), and
			// the update is refused as QueueFull: making room by
			// deleting first would let a plain enqueue take the room,
			// and lose the older update when it could not be put back.
			if s.deleteReplaced(ctx, q.DeviceID, queued, seqs) > 0 {
				continue
			}
			return store.Queued{}, store.ErrQueueFull
		}
		if isWrongLast(err) {
			continue
		}
		if err != nil {
			return store.Queued{}, err
		}
		if older != nil {
			// The publish is done and the update answered stored whatever
			// follows, so the deletes are not cut short by what is left of
			// the request's deadline: a burst of conflicting updates used
			// to leave the older entry queued beside the newer when the
			// publish came at the deadline's last moment.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
			for _, gone := range superseded(queued, *older) {
				// Acked meanwhile is as good as deleted.
				err := retry(dctx, func(ctx context.Context) error { return s.queue.DeleteMsg(ctx, gone) })
				if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) && !seqGone(err) {
					s.log.Warn("natsstore: deleting a merged tile update", "device", q.DeviceID, "seq", gone, "err", err)
				}
			}
			cancel()
		}
		m.Seq = seq
		// Told before the turn passes, so that a merge on this node
		// never deletes an update before the hook has heard of it.
		s.waitPassed(ctx, seq)
		return m, nil
	}
}

// deleteReplaced deletes the entries of queued that a newer queued entry
// of the same key replaced (its Merged), and the expired messages the
// stream still holds (in seqs, not in queued), and returns how many it
// deleted.
func (s *Store) deleteReplaced(ctx context.Context, deviceID string, queued []store.Queued, seqs []uint64) int {
	live := make(map[uint64]string, len(queued))
	for _, q := range queued {
		live[q.Seq] = q.TileKey
	}
	var gone []uint64
	for _, q := range queued {
		if k, ok := live[q.Merged]; ok && q.TileKey != "" && q.Merged != 0 && q.Merged < q.Seq && k == q.TileKey {
			gone = append(gone, q.Merged)
		}
	}
	for _, seq := range seqs {
		if _, ok := live[seq]; !ok {
			gone = append(gone, seq)
		}
	}
	n := 0
	for _, seq := range gone {
		err := retry(ctx, func(ctx context.Context) error { return s.queue.DeleteMsg(ctx, seq) })
		switch {
		case err == nil, errors.Is(err, jetstream.ErrMsgNotFound), seqGone(err):
			n++
		default:
			s.log.Warn("natsstore: deleting a replaced queue entry", "device", deviceID, "seq", seq, "err", err)
		}
	}
	return n
}

// newestWithKey is the newest of qs with the tile key, or nil.
func newestWithKey(qs []store.Queued, key string) *store.Queued {
	for i := len(qs) - 1; i >= 0; i-- {
		if qs[i].TileKey == key {
			return &qs[i]
		}
	}
	return nil
}

// superseded is the entry a merge replaced and what that one had replaced
// in turn, if still queued: a crash (or a failed delete) between
// publishing a merge and deleting the older entry leaves both, and the
// next merge of the key deletes the leftover with it, whose content the
// newer entry holds.
func superseded(queued []store.Queued, older store.Queued) []uint64 {
	out := []uint64{older.Seq}
	// Each entry replaced a lower number, so the walk ends.
	for prev := older.Merged; prev != 0 && prev < out[len(out)-1]; {
		i := slices.IndexFunc(queued, func(q store.Queued) bool { return q.Seq == prev })
		if i < 0 || queued[i].TileKey != older.TileKey {
			break
		}
		out = append(out, prev)
		prev = queued[i].Merged
	}
	return out
}

// lastOf is the highest of a subject's sequences but skip, 0 if none: the
// last sequence a conditional publish expects.
func lastOf(seqs []uint64, skip uint64) uint64 {
	for i := len(seqs) - 1; i >= 0; i-- {
		if seqs[i] != skip {
			return seqs[i]
		}
	}
	return 0
}

// conflictPause waits a moment, random and growing with the attempts,
// before a merge that lost to a concurrent change tries again, so that
// nodes merging into one queue at once do not keep colliding in step.
func conflictPause(ctx context.Context, try int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d := time.Duration(rand.Int64N(int64(time.Millisecond) << min(try, 5)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pending reads the device's subject above after from the stream's leader.
// It is the session's read of its device's queue, from which this node
// notes the device's named notifications until Release (named.go); the
// store's own reads go through pending.
func (s *Store) Pending(ctx context.Context, deviceID string, after uint64) ([]store.Queued, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	done := s.namedSeen.reading(deviceID, after)
	out, _, err := s.pending(ctx, deviceID, after)
	if err != nil {
		return nil, err
	}
	out = withoutReplaced(out)
	var named []uint64
	for _, q := range out {
		if q.MessageID != "" {
			named = append(named, q.Seq)
		}
	}
	done(named)
	return out, nil
}

// withoutReplaced leaves out of qs the entries that a later entry of qs
// replaced (its Merged names them): a merge, a Topic replacement or a
// move publishes the newer entry, which holds everything the older said,
// and only then deletes the older, so a node that died or failed in
// between leaves both queued until the key's next update deletes the
// leftover. The device is sent the newer alone, as if the delete had
// been made; an ack of the newer deletes both.
func withoutReplaced(qs []store.Queued) []store.Queued {
	var replaced map[uint64]bool
	for _, q := range qs {
		if q.Merged != 0 && q.Merged < q.Seq {
			if replaced == nil {
				replaced = map[uint64]bool{}
			}
			replaced[q.Merged] = true
		}
	}
	if replaced == nil {
		return qs
	}
	out := qs[:0:0]
	for _, q := range qs {
		if !replaced[q.Seq] {
			out = append(out, q)
		}
	}
	return out
}

// pending is Pending, with the sequence of every message on the subject
// above after, expired or not: a conditional publish expects the last of
// them, which the stream still holds until its TTL deletes it.
func (s *Store) pending(ctx context.Context, deviceID string, after uint64) ([]store.Queued, []uint64, error) {
	subj := s.subjectOf(deviceID)
	now := s.now()
	var (
		out  []store.Queued
		seqs []uint64
	)
	for next := after + 1; next != 0; {
		var m *jetstream.RawStreamMsg
		err := retry(ctx, func(ctx context.Context) error {
			var err error
			m, err = s.queue.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subj))
			return err
		})
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, nil, unavailable("pending", err)
		}
		q, err := decode(m.Sequence, m.Header, m.Data)
		if err != nil {
			return nil, nil, err
		}
		seqs = append(seqs, m.Sequence)
		if q.ExpiresAt.IsZero() || q.ExpiresAt.After(now) {
			out = append(out, q)
		}
		next = m.Sequence + 1
	}
	return out, seqs, nil
}

// Ack purges the device's subject up to seq and records seq on the device.
func (s *Store) Ack(ctx context.Context, deviceID string, seq uint64) error {
	if err := s.check(); err != nil {
		return err
	}
	if seq > store.MaxSeq {
		return fmt.Errorf("natsstore: ack %d: %w", seq, store.ErrSeqRange)
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := s.purge(ctx, deviceID, seq); err != nil {
		return err
	}
	err := s.updateDevice(ctx, deviceID, func(r *deviceRec) bool {
		if seq <= r.Acked {
			return false
		}
		r.Acked = seq
		return true
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func (s *Store) purge(ctx context.Context, deviceID string, seq uint64) error {
	if seq > store.MaxSeq {
		// No stream sequence gets there; an ack that claims to is
		// wrong, and must not empty the queue.
		return fmt.Errorf("natsstore: ack %d: %w", seq, store.ErrSeqRange)
	}
	if !s.namedSeen.unnamedUpTo(deviceID, seq) {
		if err := s.deliveredUpTo(ctx, deviceID, seq); err != nil {
			return err
		}
	}
	// Purge keeps what is at or above the sequence given.
	opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject(s.subjectOf(deviceID)), jetstream.WithPurgeSequence(seq + 1)}
	if err := retry(ctx, func(ctx context.Context) error { return s.queue.Purge(ctx, opts...) }); err != nil {
		return unavailable("ack", err)
	}
	s.namedSeen.purgedTo(deviceID, seq)
	return nil
}

// AckLater is Ack applied within AckDelay by Run.
func (s *Store) AckLater(deviceID string, seq uint64) { s.lazy.Ack(deviceID, seq) }

// Run applies the lazy acks and touches, AckDelay after the first one
// waiting, until ctx ends or the store is closed; then what is left.
func (s *Store) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("natsstore: Run called twice")
	}
	defer close(s.ran)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Close ends Run too: this goroutine, Run's own, lasts as long as it.
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return s.lazy.Run(ctx, nil, s.ackDelay, s.flush)
}

func (s *Store) flush(acks map[string]uint64, touches map[string]int64) {
	s.flushTouches(touches)
	// One purge after another, not many in flight: tried with 16 and 64
	// in flight, a notification cost the NATS servers more with 64
	// senders (a flush that ends sooner leaves fewer of a device's acks
	// to coalesce into the next one; docs/cluster.md).
	for dev, seq := range acks {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		// Through the unexported path: Ack refuses once closing. The
		// device's acked number is left alone: a write more per ack,
		// and highestGiven does without it.
		err := s.purge(ctx, dev, seq)
		cancel()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("natsstore: applying an ack", "device", dev, "seq", seq, "err", err)
		}
	}
}

// TouchLater is TouchDevice applied within AckDelay by Run; it never
// moves last-seen back.
func (s *Store) TouchLater(id string, seen time.Time) { s.lazy.Touch(id, seen) }

// touchWorkers bounds the round trips Run's flush has in flight for lazy
// touches: a node taking thousands of devices at once must not wait for
// them one after another.
const touchWorkers = 16

func (s *Store) flushTouches(touches map[string]int64) {
	if len(touches) == 0 {
		return
	}
	ids := make(chan string)
	var wg sync.WaitGroup
	for range min(touchWorkers, len(touches)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				ms := touches[id]
				ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
				err := s.changeDevice(ctx, id, func(r *deviceRec) bool {
					if r.Seen >= ms {
						return false
					}
					r.Seen = ms
					return true
				})
				cancel()
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					s.log.Warn("natsstore: recording last seen", "device", id, "err", err)
				}
			}
		}()
	}
	for id := range touches {
		ids <- id
	}
	close(ids)
	wg.Wait()
}

// ReportCommits sets f to be told of every publish of a notification:
// one request, the time until a quorum of the stream's servers had it,
// and its error.
func (s *Store) ReportCommits(f func(requests int, took time.Duration, err error)) {
	s.onCommit.Store(&f)
}

// OnCommitted sets the hook the consumer tells of every commit.
func (s *Store) OnCommitted(f func(store.Queued)) { s.hook.Store(&f) }

func (s *Store) tell(q store.Queued) {
	if f := s.hook.Load(); f != nil {
		(*f)(q)
	}
}

// consumed is the ordered consumer's handler: one goroutine, stream order.
func (s *Store) consumed(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		s.log.Warn("natsstore: a queue message without metadata", "err", err)
		return
	}
	s.bounds.seen(m.Subject(), md.Sequence.Stream)
	q, err := decode(md.Sequence.Stream, m.Headers(), m.Data())
	if err != nil {
		s.log.Warn("natsstore: an undecodable queue message", "err", err)
	} else {
		if q.MessageID != "" {
			s.namedSeen.committed(q.DeviceID, q.Seq)
		}
		s.tell(q)
	}
	s.pmu.Lock()
	if md.Sequence.Stream > s.passed {
		s.passed = md.Sequence.Stream
		close(s.moved)
		s.moved = make(chan struct{})
	}
	s.pmu.Unlock()
}

// passWait bounds how long Enqueue waits for the consumer: the
// notification is durable already, and a message purged by an ack before
// the consumer reached it is never handed over.
const passWait = 2 * time.Second

func (s *Store) waitPassed(ctx context.Context, seq uint64) {
	s.passWaits.Add(1)
	timeout := time.NewTimer(passWait)
	defer timeout.Stop()
	for {
		s.pmu.Lock()
		passed, moved := s.passed, s.moved
		s.pmu.Unlock()
		if passed >= seq {
			return
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return
		case <-timeout.C:
			// The consumer did not follow: it is finding the stream's
			// new leader, and the call was slowed by a failover.
			s.failingOver()
			return
		}
	}
}

// QueueLength counts the messages in the stream.
func (s *Store) QueueLength(ctx context.Context) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	info, err := s.queue.Info(ctx)
	if err != nil {
		return 0, unavailable("queue length", err)
	}
	return int64(info.State.Msgs), nil
}
