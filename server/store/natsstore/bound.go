package natsstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/server/store"
)

// The depth of a device's queue, bounded without a read per enqueue.
//
// The stream holds one message per subject above the depth (queueConfig),
// so that a replacement in a full queue publishes its merged entry before
// it deletes the one it replaces, as it does below the depth: no reader
// ever sees the key's entry gone, and the conditional publish settles
// concurrent replacements on any number of nodes. That one place is the
// replacements' only: a plain enqueue must stop at the depth. Checking
// the depth exactly costs two reads on the stream's leader per enqueue
// (the subject's last sequence, then its count, before a publish that
// expects that sequence), which made plain enqueues 3-5 times slower; so
// each node keeps an upper bound of each device's queue length, and
// checks exactly only near the depth.
//
// A bound is a pair (base, count): the subject holds at most count
// messages numbered up to base. Numbers are never reused, so the
// messages up to base can only be deleted, and the pair stays true until
// something is added above base. A read gives an exact pair; the node's
// follower of the stream, which sees every commit in stream order, adds
// one for each message above base (a message deleted before it reached
// the follower was never there for it, and is counted by neither); this
// node's own publishes not yet seen by the follower, and those in flight,
// are added on top. Acks and deletions are not followed: the bound only
// over-counts, until the next exact read brings it down.
//
// A node counts every queue at once when it starts (the stream's count per
// subject, one paged request made after its follower has started) and
// again after its connection is remade: from then on a subject the count
// did not name holds nothing but what the follower sees, and no
// notification pays a read for being the node's first to its device.
// Until a count has been taken (or while one fails), a device's first
// enqueue on the node reads. The node keeps a small record per device it
// has seen a notification for, as its devices' copy keeps one per device,
// until the copy sees the device deleted (forget).
//
// What the node cannot count is what other nodes have published that its
// follower has not reached yet. A plain enqueue is published unchecked
// only while the bound leaves depthMargin places below the depth for
// those; otherwise it is checked exactly (publishChecked). The margin is
// a quarter of the depth: the follower trails the stream by
// milliseconds, and other nodes would have to commit that many
// notifications to one device within that moment. If they did, the queue
// would hold one above the depth, the stream's bound, and a replacement
// there finds no room: it is refused as QueueFull rather than made by
// deleting first (mergeEnqueue).

// depthMargin is how many places below the depth a plain enqueue leaves
// for other nodes' publishes the node has not seen yet.
func depthMargin(depth int) int { return max(depth/4, 2) }

type depthBound struct {
	// valid is set once a read has given the pair; until then the entry
	// only collects what the follower sees while the first read is made.
	valid bool
	base  uint64 // the highest number counted
	count int    // at most this many messages numbered up to base
	// own are this node's publishes above base, acknowledged and not yet
	// seen by the follower; inflight those not yet acknowledged.
	own      []uint64
	inflight int
	// readers are the reads under way; during the first one, early is
	// what the follower saw, in stream order.
	readers int
	early   []uint64
	// gone is set when the device was deleted while the bound was in
	// use: the last read or publish using it drops it.
	gone bool
}

func (b *depthBound) upper() int { return b.count + len(b.own) + b.inflight }

// count1 counts a message the follower saw: numbers come to it in stream
// order, so every later one is above it.
func (b *depthBound) count1(seq uint64) {
	if seq <= b.base {
		return
	}
	b.base, b.count = seq, b.count+1
	b.own = dropUpTo(b.own, seq)
}

func dropUpTo(seqs []uint64, base uint64) []uint64 {
	out := seqs[:0]
	for _, s := range seqs {
		if s > base {
			out = append(out, s)
		}
	}
	return out
}

// bounds is every device's bound on one node, by its queue's subject.
type bounds struct {
	mu sync.Mutex
	m  map[string]*depthBound
	// known is set while every subject without a bound is known to hold
	// nothing the follower has not counted: after a count of every queue
	// (counting), until the follower may have missed commits (missed).
	known bool
	// last is the stream's last number before that count was taken.
	last uint64
	// counting is set while a count is taken; early is what the follower
	// saw meanwhile of subjects without a bound.
	counting bool
	early    []seenMsg
	// gen counts the times the follower may have missed commits: a read
	// or count begun before one is not applied after it.
	gen uint64
	// lost is signalled when a count of every queue is wanted again.
	lost chan struct{}
}

type seenMsg struct {
	subj string
	seq  uint64
}

func newBounds() *bounds {
	return &bounds{m: map[string]*depthBound{}, lost: make(chan struct{}, 1)}
}

// missed forgets every bound: the node's connection to NATS was remade,
// and its follower may have missed commits meanwhile. Bounds in use are
// kept until their reads end, as not read yet. A new count is wanted.
func (bs *bounds) missed() {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.gen++
	bs.known, bs.counting, bs.early = false, false, nil
	for subj, b := range bs.m {
		if b.readers == 0 && b.inflight == 0 {
			delete(bs.m, subj)
			continue
		}
		b.valid, b.early, b.base, b.count = false, nil, 0, 0
	}
	select {
	case bs.lost <- struct{}{}:
	default:
	}
}

// get is subj's bound, made from the count of every queue if there is
// none; nil if there is none to make. Under bs.mu.
func (bs *bounds) get(subj string) *depthBound {
	b := bs.m[subj]
	if b == nil && bs.known {
		b = &depthBound{valid: true, base: bs.last}
		bs.m[subj] = b
	}
	return b
}

// forget drops subj's bound: its device was deleted, and no enqueue to
// it is accepted after, so the record would only hold memory. A bound in
// use is dropped when the last read or publish using it ends. (A bound
// the follower makes again for a commit from before the deletion may
// count less than the subject holds until its purge, and nothing uses
// it: an enqueue to a deleted device is refused before it is counted.)
func (bs *bounds) forget(subj string) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b := bs.m[subj]; b != nil {
		b.gone = true
		bs.dropIfGone(subj, b)
	}
}

// dropIfGone drops a forgotten bound once nothing uses it. Under bs.mu.
func (bs *bounds) dropIfGone(subj string, b *depthBound) {
	if b.gone && b.readers == 0 && b.inflight == 0 && bs.m[subj] == b {
		delete(bs.m, subj)
	}
}

// reserve counts a plain enqueue in flight and reports true if the
// subject's bound leaves it room to be published unchecked below depth;
// else it counts nothing and reports false. A true is followed by done.
func (bs *bounds) reserve(subj string, depth int) bool {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.get(subj)
	if b == nil || !b.valid || b.upper()+1+depthMargin(depth) > depth {
		return false
	}
	b.inflight++
	return true
}

// done ends a reserved enqueue: seq is its number, 0 if it failed.
func (bs *bounds) done(subj string, seq uint64) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.m[subj]
	if b == nil {
		return
	}
	b.inflight--
	if seq > b.base {
		b.own = append(b.own, seq)
	}
	bs.dropIfGone(subj, b)
}

// seen is the follower's: message seq was committed to subj.
func (bs *bounds) seen(subj string, seq uint64) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.get(subj)
	switch {
	case b == nil:
		if bs.counting {
			bs.early = append(bs.early, seenMsg{subj, seq})
		}
	case b.valid:
		b.count1(seq)
	case b.readers > 0:
		b.early = append(b.early, seq)
	}
}

// reading starts a read of subj; the function it returns is called once
// with what the read found (ok false if it failed): the subject held
// count messages, the last numbered base (or right after a publish that
// expected what was read, the publish's number and count). Started
// before the read, so that what the follower sees meanwhile of a subject
// it had no bound for is counted too.
func (bs *bounds) reading(subj string) func(ok bool, base uint64, count int) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.get(subj)
	if b == nil {
		b = &depthBound{}
		bs.m[subj] = b
	}
	b.readers++
	gen := bs.gen
	return func(ok bool, base uint64, count int) {
		bs.mu.Lock()
		defer bs.mu.Unlock()
		b.readers--
		if gen != bs.gen {
			ok = false
		}
		switch {
		case ok && !b.valid:
			b.valid, b.base, b.count = true, base, count
			for _, seq := range b.early {
				b.count1(seq)
			}
			b.early = nil
			b.own = dropUpTo(b.own, b.base)
		case ok && base >= b.base:
			// A pair with a lower base would forget what the follower
			// counted above it.
			b.base, b.count = base, count
			b.own = dropUpTo(b.own, base)
		case !ok && !b.valid && b.readers == 0 && b.inflight == 0:
			delete(bs.m, subj)
		}
		bs.dropIfGone(subj, b)
	}
}

// countingAll starts a count of every queue, begun before the stream's last
// number is read; the function it returns is called once with the count
// per subject and that number (ok false if it failed).
func (bs *bounds) countingAll() func(counts map[string]uint64, last uint64, ok bool) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.counting, bs.early = true, nil
	gen := bs.gen
	return func(counts map[string]uint64, last uint64, ok bool) {
		bs.mu.Lock()
		defer bs.mu.Unlock()
		early := bs.early
		bs.counting, bs.early = false, nil
		if !ok || gen != bs.gen {
			return
		}
		for subj, n := range counts {
			if bs.m[subj] == nil {
				bs.m[subj] = &depthBound{valid: true, base: last, count: int(n)}
			}
		}
		bs.known, bs.last = true, last
		// Seen before the count knew of them; those up to last are in it.
		for _, e := range early {
			if e.seq <= last {
				continue
			}
			if b := bs.get(e.subj); b.valid {
				b.count1(e.seq)
			}
		}
	}
}

// countQueues counts every queue for the bounds, once the follower runs,
// and keeps counting them again whenever the follower may have missed
// commits. A count that fails leaves devices to be read one by one until
// one succeeds.
func (s *Store) countQueues(ctx context.Context) error {
	if err := s.countAll(ctx); err != nil {
		s.log.Warn("natsstore: counting the queues", "err", err)
		s.bounds.missed()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			select {
			case <-s.stop:
				return
			case <-s.bounds.lost:
			}
			ctx, cancel := context.WithTimeout(s.life, s.timeout)
			err := s.countAll(ctx)
			cancel()
			if err == nil {
				continue
			}
			s.log.Debug("natsstore: counting the queues", "err", err)
			select {
			case <-s.stop:
				return
			case <-time.After(nodeBeat):
				s.bounds.missed()
			}
		}
	}()
	return nil
}

func (s *Store) countAll(ctx context.Context) error {
	done := s.bounds.countingAll()
	var last uint64
	err := retry(ctx, func(ctx context.Context) error {
		info, err := s.queue.Info(ctx)
		if err == nil {
			last = info.State.LastSeq
		}
		return err
	})
	var counts map[string]uint64
	if err == nil {
		err = retry(ctx, func(ctx context.Context) error {
			info, err := s.queue.Info(ctx, jetstream.WithSubjectFilter(s.subject+"*"))
			if err == nil {
				counts = info.State.Subjects
			}
			return err
		})
	}
	done(counts, last, err == nil)
	return err
}

// depthFor is the depth a plain enqueue stops at: the caller's, or the
// stream's own if the caller's is none or above it.
func (s *Store) depthFor(opts store.EnqueueOptions) int {
	if opts.MaxDepth > 0 && opts.MaxDepth < s.depth {
		return opts.MaxDepth
	}
	return s.depth
}

// publishPlain publishes a notification that replaces nothing, if its
// device's queue holds fewer than depth: unchecked while the node's bound
// says it is far below, else checked exactly.
func (s *Store) publishPlain(ctx context.Context, q store.Queued, depth int) (uint64, error) {
	subj := s.subjectOf(q.DeviceID)
	if !s.bounds.reserve(subj, depth) {
		return s.publishChecked(ctx, q, depth)
	}
	seq, err := s.publish(ctx, q)
	s.bounds.done(subj, seq)
	return seq, err
}

// publishChecked publishes q if its device's queue holds fewer than depth:
// the count is read after the subject's last sequence, and the publish
// expects that sequence, so nothing was added between the count and the
// publish (deletions only make room). An enqueue that loses to a
// concurrent one reads again. This node's checked enqueues to one device
// take turns, so that only other nodes' conflict with one; apart from
// merges' turns, since a merge's callback may enqueue.
func (s *Store) publishChecked(ctx context.Context, q store.Queued, depth int) (uint64, error) {
	unlock, err := s.checking.lock(ctx, q.DeviceID)
	if err != nil {
		return 0, unavailable("enqueue", err)
	}
	defer unlock()
	for try := 0; ; try++ {
		if try > 0 {
			if err := s.pause(ctx, try); err != nil {
				return 0, unavailable("enqueue", fmt.Errorf("the device's queue changed under %d attempts: %w", try, err))
			}
		}
		read := s.bounds.reading(s.subjectOf(q.DeviceID))
		last, held, err := s.subjectState(ctx, q.DeviceID)
		if err != nil {
			read(false, 0, 0)
			return 0, err
		}
		read(true, last, held)
		if held >= depth {
			return 0, store.ErrQueueFull
		}
		published := s.bounds.reading(s.subjectOf(q.DeviceID))
		seq, err := s.publish(ctx, q, jetstream.WithExpectLastSequencePerSubject(last))
		published(err == nil, seq, held+1)
		if isWrongLast(err) {
			continue
		}
		return seq, err
	}
}

// subjectState reads the device's subject's last sequence (0 if empty),
// then how many messages it holds.
func (s *Store) subjectState(ctx context.Context, deviceID string) (last uint64, held int, err error) {
	subj := s.subjectOf(deviceID)
	err = retry(ctx, func(ctx context.Context) error {
		m, err := s.queue.GetLastMsgForSubject(ctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			last = 0
			return nil
		case err == nil:
			last = m.Sequence
		}
		return err
	})
	if err != nil {
		return 0, 0, unavailable("enqueue", err)
	}
	if last == 0 {
		return 0, 0, nil
	}
	err = retry(ctx, func(ctx context.Context) error {
		info, err := s.queue.Info(ctx, jetstream.WithSubjectFilter(subj))
		if err == nil {
			held = int(info.State.Subjects[subj])
		}
		return err
	})
	if err != nil {
		return 0, 0, unavailable("enqueue", err)
	}
	return last, held, nil
}
