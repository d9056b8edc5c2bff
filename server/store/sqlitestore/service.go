package sqlitestore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/server/store"
)

// The service's model and errors are package store's; the names here keep
// this package's code short and mean the same values.
type (
	Device         = store.Device
	Channel        = store.Channel
	Queued         = store.Queued
	EnqueueOptions = store.EnqueueOptions
)

// Service-store sentinel errors (package store's).
var (
	ErrExists    = store.ErrExists
	ErrQueueFull = store.ErrQueueFull
	ErrClosed    = store.ErrClosed
	ErrSeqRange  = store.ErrSeqRange
)

// MaxSeq is the highest sequence number the service stores (store.MaxSeq).
const MaxSeq = store.MaxSeq

// Store keeps the store contract, and its background work runs in Run.
var (
	_ store.Store          = (*Store)(nil)
	_ store.Runner         = (*Store)(nil)
	_ store.CommitReporter = (*Store)(nil)
)

// Store is the notification service's database. Every write goes through
// one committer (Run) on one connection: concurrent requests share a
// transaction and its fsync (group commit), and writers queue in Go rather
// than spin in SQLite's busy handler. Reads use a separate pool of
// connections, which WAL lets run beside the writer.
type Store struct {
	db   *sql.DB // the one writer connection
	rd   *sql.DB // readers
	stmt writeStmts
	// pending and byToken are the notification path's reads, prepared
	// once on the read pool.
	pending, byToken, device *sql.Stmt
	channels                 *store.TokenCache

	writes chan writeReq
	// stop ends Run when Close comes first; running is set by Run, ran
	// closed when it has returned.
	stop      chan struct{}
	running   atomic.Bool
	ran       chan struct{}
	closeOnce sync.Once
	// closeMu makes handing a request to the committer and stopping it
	// exclusive, so no request is handed over after the committer has
	// failed what was left and stopped.
	closeMu sync.RWMutex
	closed  bool

	// lazy holds what AckLater and TouchLater were given until the
	// committer's next transaction takes it.
	lazy     *store.Lazy
	ackDelay time.Duration

	// maxBatch bounds how many requests share a transaction.
	maxBatch int
	onCommit atomic.Pointer[func(int, time.Duration, error)]
	nowFunc  func() time.Time
	// committed, if set, is told of every notification once durable.
	committed atomic.Pointer[func(Queued)]
	// notes and forgotAt are the committer's own: what it knows of the
	// devices (notes.go), and when outcomes past their retention were
	// last deleted.
	notes    notes
	forgotAt time.Time
	// dataVersion is the writer connection's PRAGMA data_version as the
	// committer last saw it (noteOthers).
	dataVersion int64
	// commits counts transactions, for measuring group commit.
	mu      sync.Mutex
	commits uint64
}

// Options tune the service store.
type Options struct {
	// GroupCommit lets concurrent writes share a transaction. Off, each
	// write commits (and fsyncs) on its own; kept for measuring the
	// difference.
	GroupCommit bool
	// MaxBatch is the most requests per transaction (default 256).
	MaxBatch int
	// Readers is how many connections serve reads (default 4).
	Readers int
	// AckDelay is the longest an AckLater waits for a transaction to ride
	// in before one is committed for it alone (default 100 ms).
	AckDelay time.Duration
	// OnCommit, if set, is told of every group transaction the committer
	// ends (see ReportCommits).
	OnCommit func(requests int, took time.Duration, err error)
	// Now is the clock message expiry is read against and outcomes are
	// recorded and forgotten by (default time.Now): the service passes its
	// own, and tests move it.
	Now func() time.Time
}

// Open opens (creating if needed) the service database at file. Writes
// wait for Run, which commits them.
func Open(ctx context.Context, file string, opts Options) (*Store, error) {
	db, err := open(ctx, file)
	if err != nil {
		return nil, err
	}
	// One writer: SQLite has one write lock, and a second connection
	// waiting for it sleeps and retries in the busy handler, which under
	// load costs more than the writes.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	readers := opts.Readers
	if readers <= 0 {
		readers = 4
	}
	rd, err := openReader(ctx, file, readers)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, rd: rd, writes: make(chan writeReq, 1024), stop: make(chan struct{}), ran: make(chan struct{}),
		maxBatch: opts.MaxBatch, channels: store.NewTokenCache(maxCachedChannels),
		lazy: store.NewLazy(), ackDelay: opts.AckDelay, nowFunc: opts.Now}
	if opts.OnCommit != nil {
		s.ReportCommits(opts.OnCommit)
	}
	if s.ackDelay <= 0 {
		s.ackDelay = 100 * time.Millisecond
	}
	if err := s.prepare(ctx); err != nil {
		s.stmt.close()
		db.Close()
		rd.Close()
		return nil, fmt.Errorf("sqlitestore: prepare: %w", err)
	}
	if s.maxBatch <= 0 {
		s.maxBatch = 256
	}
	if !opts.GroupCommit {
		s.maxBatch = 1
	}
	return s, nil
}

// ReportCommits sets f to be told of every group transaction the
// committer ends: how many requests it carried, how long it took from
// begin to durable commit, and its error. It runs on the committer, so it
// must be quick (a metrics observation).
func (s *Store) ReportCommits(f func(requests int, took time.Duration, err error)) {
	s.onCommit.Store(&f)
}

// maxCachedChannels bounds the channel cache: about 300 bytes a channel,
// so 60 MB at most, enough for every channel of the largest node we expect.
const maxCachedChannels = 200_000

func (s *Store) prepare(ctx context.Context) error {
	if err := s.stmt.prepare(ctx, s.db); err != nil {
		return err
	}
	var err error
	if s.pending, err = s.rd.PrepareContext(ctx, `SELECT seq, channel_id, kind, class, message_id, body, tile_key, accepted_at, due_at, expires_at, urgency
		FROM queue WHERE device_id = ? AND seq > ? AND (expires_at = 0 OR expires_at > ?) ORDER BY seq`); err != nil {
		return err
	}
	if s.byToken, err = s.rd.PrepareContext(ctx, `SELECT `+channelColumns+` FROM channels WHERE token = ?`); err != nil {
		return err
	}
	// Every hello reads its device: prepared once, not per hello.
	s.device, err = s.rd.PrepareContext(ctx, `SELECT secret_hash, source, created_at, last_seen, power, acked_seq, retired_at, next_seq FROM devices WHERE id = ?`)
	return err
}

// Close stops Run if it is running, fails writes still waiting, and closes
// the database.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		if s.running.Load() {
			<-s.ran
		}
		s.shut()
		s.stmt.close()
		s.pending.Close()
		s.byToken.Close()
		s.device.Close()
		err = errors.Join(s.rd.Close(), s.db.Close())
	})
	return err
}

// OnCommitted sets f to be told, on the committer goroutine, of every
// notification Enqueue stores, once its transaction is durable and before
// its Enqueue returns: for each device in sequence order, so a reader can
// keep a copy of the queue without reading it back. f must be quick.
func (s *Store) OnCommitted(f func(Queued)) { s.committed.Store(&f) }

// DevicesCurrent reports true (store.CurrentDevices): Device reads the
// one database, and OnCommitted's function is told of a commit only after
// it is made, so a Device call sees every commit told before it began.
func (s *Store) DevicesCurrent() bool { return true }

// Commits returns how many write transactions have been committed.
func (s *Store) Commits() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits
}

// writeStmts are the committer's statements, prepared once on the writer
// connection.
type writeStmts struct {
	nextSeq, bumpSeq, depth, insert, older, remove, ackDelete, ackDevice, touch *sql.Stmt
	delivered, deliveredUncounted, countOutcomes, forget, named                 *sql.Stmt
	dataVersion                                                                 *sql.Stmt
}

func (w *writeStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		st    **sql.Stmt
		query string
	}{
		// Read, then written back by the one writer: SQLite's UPDATE
		// ... RETURNING costs several times a SELECT and an UPDATE.
		{&w.nextSeq, `SELECT next_seq, acked_seq FROM devices WHERE id = ?`},
		{&w.bumpSeq, `UPDATE devices SET next_seq = ? + 1 WHERE id = ?`},
		{&w.depth, `SELECT count(*) FROM queue WHERE device_id = ?`},
		{&w.insert, `INSERT INTO queue (device_id, seq, channel_id, kind, class, message_id, body, tile_key, accepted_at, due_at, expires_at, urgency)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&w.older, `SELECT seq, channel_id, kind, class, message_id, body, accepted_at, due_at
			FROM queue WHERE device_id = ? AND tile_key = ? ORDER BY seq DESC LIMIT 1`},
		{&w.remove, `DELETE FROM queue WHERE device_id = ? AND seq = ?`},
		{&w.ackDelete, `DELETE FROM queue WHERE device_id = ? AND seq <= ?`},
		// A device can be ahead of the store only if the store lost
		// committed numbers (a restored backup); numbering on from below
		// what the device has applied would make it skip new
		// notifications as already seen.
		{&w.ackDevice, `UPDATE devices SET acked_seq = max(acked_seq, ?), next_seq = max(next_seq, ? + 1) WHERE id = ?`},
		// Only the notifications a sender named, and within the bound
		// per channel (store.MaxOutcomesPerChannel); uncounted when the
		// committer's notes say the bound holds (notes.go).
		{&w.delivered, `INSERT OR REPLACE INTO message_outcomes (channel_id, message_id, state, at)
			SELECT q.channel_id, q.message_id, 'delivered', ? FROM queue q
			WHERE q.device_id = ? AND q.seq <= ? AND q.message_id != ''
			AND (SELECT count(*) FROM message_outcomes o WHERE o.channel_id = q.channel_id) < ?`},
		{&w.deliveredUncounted, `INSERT OR REPLACE INTO message_outcomes (channel_id, message_id, state, at)
			SELECT q.channel_id, q.message_id, 'delivered', ? FROM queue q
			WHERE q.device_id = ? AND q.seq <= ? AND q.message_id != ''`},
		{&w.countOutcomes, `SELECT count(*) FROM message_outcomes WHERE channel_id = ?`},
		{&w.forget, `DELETE FROM message_outcomes WHERE at < ?`},
		{&w.dataVersion, `PRAGMA data_version`},
		{&w.named, `SELECT seq, channel_id FROM queue WHERE device_id = ? AND message_id != '' ORDER BY seq`},
		// A lazy touch may land after a later TouchDevice of the same
		// device (its session ended at once): the later time stays.
		{&w.touch, `UPDATE devices SET last_seen = max(last_seen, ?) WHERE id = ?`},
	} {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			return err
		}
		*p.st = st
	}
	return nil
}

func (w *writeStmts) close() {
	for _, st := range []*sql.Stmt{w.nextSeq, w.bumpSeq, w.depth, w.insert, w.older, w.remove, w.ackDelete, w.ackDevice, w.touch, w.delivered, w.deliveredUncounted, w.countOutcomes, w.forget, w.named, w.dataVersion} {
		if st != nil {
			st.Close()
		}
	}
}

// A writeReq is one request to the committer. apply runs inside the group
// transaction and keeps its own outcome; an error it returns is one the
// transaction cannot survive, and fails every request in it. finish hands
// the outcome back, or err when the transaction failed.
type writeReq interface {
	apply(ctx context.Context, tx *groupTx) error
	finish(err error)
}

// groupTx is one group transaction as the requests in it see it.
type groupTx struct {
	tx   *sql.Tx
	stmt *writeStmts
	// acks maps a device to the highest ack in the batch, so a device
	// acknowledging many times between commits costs one delete.
	acks map[string]*ackReq
	// now is the transaction's time for outcomes.
	now time.Time
	// notes is the committer's knowledge of the devices (notes.go).
	notes *notes
	// bound holds the statements bound to tx so far.
	bound map[*sql.Stmt]*sql.Stmt
}

// st binds a prepared statement to the transaction. The writer pool has
// one connection, so this reuses the statement rather than re-preparing;
// each is bound once per transaction, not once per use, since binding
// allocates and locks the statement and a transaction uses each hundreds
// of times.
func (g *groupTx) st(ctx context.Context, s *sql.Stmt) *sql.Stmt {
	if b, ok := g.bound[s]; ok {
		return b
	}
	b := g.tx.StmtContext(ctx, s)
	if g.bound == nil {
		g.bound = make(map[*sql.Stmt]*sql.Stmt, 8)
	}
	g.bound[s] = b
	return b
}

// submit hands a request to the committer and waits for its outcome.
func (s *Store) submit(ctx context.Context, r writeReq, done <-chan struct{}) error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	// The committer runs until closed is set, so this send cannot wait on
	// a committer that is gone.
	select {
	case s.writes <- r:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	s.closeMu.RUnlock()
	// Once handed over the request will be committed or failed; wait for
	// the outcome even if ctx ends, so "Received" is never guessed.
	<-done
	return nil
}

// Run is the committer: it commits every write until ctx ends or the store
// is closed, then fails the writes still waiting, commits the lazy acks and
// returns. Writes after that fail with ErrClosed, so the store's users
// stop before it: the service's shutdown ends its sessions first.
func (s *Store) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sqlitestore: Run called twice")
	}
	defer close(s.ran)
	select {
	case <-s.stop:
		// Closed before it ran: Close fails what is waiting.
		return nil
	default:
	}
	defer s.shut()
	batch := make([]writeReq, 0, s.maxBatch)
	// flush fires AckDelay after the first lazy ack that no transaction
	// has taken yet; nil while there is none.
	var flush <-chan time.Time
	for {
		batch = batch[:0]
		select {
		case r := <-s.writes:
			batch = append(batch, r)
		case <-s.lazy.Kicked():
			if flush == nil {
				flush = time.After(s.ackDelay)
			}
			continue
		case <-flush:
		case <-ctx.Done():
			return nil
		case <-s.stop:
			return nil
		}
		flush = nil
	fill:
		for len(batch) < s.maxBatch {
			select {
			case r := <-s.writes:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commitBatch(batch)
	}
}

// shut refuses writes from now on, fails those waiting and commits the lazy
// acks: without them the devices are sent again what they have applied.
func (s *Store) shut() {
	s.closeMu.Lock()
	wasClosed := s.closed
	s.closed = true
	s.closeMu.Unlock()
	if wasClosed {
		return
	}
	s.failPending()
	s.commitBatch(nil)
}

func (s *Store) failPending() {
	for {
		select {
		case r := <-s.writes:
			r.finish(ErrClosed)
		default:
			return
		}
	}
}

func (s *Store) commitBatch(batch []writeReq) {
	// Every transaction takes the lazy acks waiting, so that while
	// notifications flow acks cost no commit of their own.
	lazy, touches := s.lazy.Take()
	if len(batch) == 0 && len(lazy) == 0 && len(touches) == 0 {
		return
	}
	requests := len(batch)
	for dev, seq := range lazy {
		batch = append(batch, &ackReq{device: dev, seq: seq, lazy: true})
	}
	for dev, ms := range touches {
		batch = append(batch, &touchReq{device: dev, ms: ms})
	}
	err := s.commitTx(batch, requests)
	if err != nil && len(batch) > 1 {
		// One request can fail a transaction it shares with others'
		// work. Each is tried again in a transaction of its own, once, so
		// whatever failed is answered alone and the rest go through; a
		// lazy ack that fails alone is dropped, since it only spares the
		// device a resend. Retrying the whole group, or keeping a failed
		// ack for the next one, would let one bad request fail every
		// transaction after it.
		for _, r := range batch {
			n := 1
			if a, ok := r.(*ackReq); ok && a.lazy {
				n = 0
			}
			if _, ok := r.(*touchReq); ok {
				n = 0
			}
			r.finish(s.commitTx([]writeReq{r}, n))
		}
		return
	}
	for _, r := range batch {
		r.finish(err)
	}
}

// commitTx runs reqs in one transaction and returns its error; requests is
// how many of them someone waits for, for OnCommit.
func (s *Store) commitTx(reqs []writeReq, requests int) error {
	ctx := context.Background()
	began := time.Now()
	err := func() error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := s.noteOthers(ctx, tx); err != nil {
			return err
		}
		g := &groupTx{tx: tx, stmt: &s.stmt, acks: map[string]*ackReq{}, now: s.now(), notes: &s.notes}
		if err := s.forget(ctx, g); err != nil {
			return err
		}
		for _, r := range reqs {
			if a, ok := r.(*ackReq); ok {
				if top := g.acks[a.device]; top == nil || a.seq > top.seq {
					g.acks[a.device] = a
				}
			}
		}
		for _, r := range reqs {
			if err := r.apply(ctx, g); err != nil {
				return err
			}
		}
		return tx.Commit()
	}()
	if f := s.onCommit.Load(); f != nil {
		(*f)(requests, time.Since(began), err)
	}
	if err != nil {
		// What the transaction undid may have been noted.
		s.notes.reset()
		s.forgotAt = time.Time{}
		return fmt.Errorf("sqlitestore: write: %w", err)
	}
	if f := s.committed.Load(); f != nil {
		for _, r := range reqs {
			if e, ok := r.(interface{ stored() (Queued, bool) }); ok {
				if q, ok := e.stored(); ok {
					(*f)(q)
				}
			}
		}
	}
	s.mu.Lock()
	s.commits++
	s.mu.Unlock()
	return nil
}

// noteOthers forgets the notes when another connection has committed to
// the database since the committer's last transaction: another store, or
// another process, opened on the same file. Its writes are not in the
// notes, and a note they made stale would number a notification twice.
// The reads of this store are read-only connections and its writes are
// this connection's, so one store alone never forgets by it. data_version
// is read inside the transaction, which holds the write lock (BEGIN
// IMMEDIATE): nobody else commits until it ends.
func (s *Store) noteOthers(ctx context.Context, tx *sql.Tx) error {
	var v int64
	if err := tx.StmtContext(ctx, s.stmt.dataVersion).QueryRowContext(ctx).Scan(&v); err != nil {
		return err
	}
	if v != s.dataVersion {
		s.notes.reset()
		s.dataVersion = v
	}
	return nil
}

// Enqueue durably appends q to its device's queue, giving it the device's
// next sequence number. When it returns nil the notification is committed.
//
// A tile update that opts.Merge merges with a queued one replaces it: the
// older entry is deleted and the merged one takes a new sequence number
// rather than the older one's. A session may already have read (and sent)
// the older entry; a new number can never have been sent, so the merged
// state always reaches the device, and the worst a race can do is apply the
// older update twice, which leaves a tile in the same state. Keeping the
// older number would instead let a session send the stale body under the
// number the device then acknowledges, losing the newer update. Merged
// returns the replaced sequence number.
func (s *Store) Enqueue(ctx context.Context, q Queued, opts EnqueueOptions) (Queued, error) {
	r := &enqueueReq{in: q, opts: opts, done: make(chan struct{})}
	if err := s.submit(ctx, r, r.done); err != nil {
		return Queued{}, err
	}
	if r.err != nil {
		return Queued{}, r.err
	}
	return r.q, nil
}

type enqueueReq struct {
	// in is the notification as given; q is what apply made of it. A
	// request may be applied twice (see commitBatch), so apply starts
	// from in each time.
	in, q Queued
	opts  EnqueueOptions
	err   error
	done  chan struct{}
}

func (r *enqueueReq) stored() (Queued, bool) { return r.q, r.err == nil }

func (r *enqueueReq) finish(err error) {
	if err != nil {
		r.err = err
	}
	close(r.done)
}

func (r *enqueueReq) apply(ctx context.Context, g *groupTx) error {
	q := r.in
	r.err = nil
	merged := false
	if q.TileKey != "" && r.opts.Merge != nil {
		o := Queued{DeviceID: q.DeviceID, TileKey: q.TileKey}
		var acc, due int64
		err := g.st(ctx, g.stmt.older).QueryRowContext(ctx, q.DeviceID, q.TileKey).
			Scan(&o.Seq, &o.ChannelID, &o.Kind, &o.Class, &o.MessageID, &o.Body, &acc, &due)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			o.AcceptedAt, o.DueAt = time.UnixMilli(acc), time.UnixMilli(due)
			if body, ok := r.opts.Merge(o); ok {
				if _, err := g.st(ctx, g.stmt.remove).ExecContext(ctx, q.DeviceID, o.Seq); err != nil {
					return err
				}
				q.Body, q.Merged, merged = body, o.Seq, true
				// The older update was promised by its deadline.
				if o.DueAt.Before(q.DueAt) {
					q.DueAt = o.DueAt
				}
			}
		}
	}
	var acked uint64
	var err error
	q.Seq, acked, err = g.notes.seqs(ctx, g, q.DeviceID)
	if errors.Is(err, ErrNotFound) {
		r.err = err
		return nil
	}
	if err != nil {
		return err
	}
	if q.Seq > MaxSeq {
		r.err = fmt.Errorf("device %s: %w", q.DeviceID, ErrSeqRange)
		return nil
	}
	// Everything queued is numbered above acked and below q.Seq, so the
	// queue is counted only when that range could hold MaxDepth entries.
	if r.opts.MaxDepth > 0 && !merged && q.Seq-1-min(acked, q.Seq-1) >= uint64(r.opts.MaxDepth) {
		var n int
		if err := g.st(ctx, g.stmt.depth).QueryRowContext(ctx, q.DeviceID).Scan(&n); err != nil {
			return err
		}
		if n >= r.opts.MaxDepth {
			r.err = ErrQueueFull
			return nil
		}
	}
	if _, err := g.st(ctx, g.stmt.bumpSeq).ExecContext(ctx, q.Seq, q.DeviceID); err != nil {
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

// Ack deletes the device's notifications up to seq and records seq as
// applied on the device. Acks share the group transaction with everything
// else, and only a device's highest ack in a transaction is written.
func (s *Store) Ack(ctx context.Context, deviceID string, seq uint64) error {
	// Checked before the committer: a number SQLite cannot take would
	// fail the transaction it shares with other devices' work.
	if seq > MaxSeq {
		return fmt.Errorf("sqlitestore: ack %d: %w", seq, ErrSeqRange)
	}
	r := &ackReq{device: deviceID, seq: seq, done: make(chan struct{})}
	if err := s.submit(ctx, r, r.done); err != nil {
		return fmt.Errorf("sqlitestore: ack: %w", err)
	}
	if r.err != nil {
		return fmt.Errorf("sqlitestore: ack: %w", r.err)
	}
	return nil
}

type ackReq struct {
	device string
	seq    uint64
	lazy   bool // from AckLater: nobody waits for it
	err    error
	done   chan struct{}
}

// AckLater is Ack for a caller that need not wait: the ack rides in the
// committer's next transaction, or one of its own within AckDelay. An
// ack only spares the device a resend, which it recognises by sequence
// number, so losing one in a crash costs bandwidth, never correctness.
// An ack above MaxSeq is dropped (Ack reports it as ErrSeqRange).
func (s *Store) AckLater(deviceID string, seq uint64) { s.lazy.Ack(deviceID, seq) }

func (r *ackReq) apply(ctx context.Context, g *groupTx) error {
	if g.acks[r.device] != r {
		return nil // a higher ack for the device is in this transaction
	}
	// Delivered is recorded in the transaction that deletes, so a
	// sender never finds a notification neither queued nor delivered;
	// an ack that deletes nothing named skips it (notes.go).
	named, err := g.notes.namedUpTo(ctx, g, r.device, r.seq)
	if err != nil {
		return err
	}
	if len(named) > 0 {
		if err := g.delivered(ctx, r.device, r.seq, named); err != nil {
			return err
		}
	}
	if _, err := g.st(ctx, g.stmt.ackDelete).ExecContext(ctx, r.device, r.seq); err != nil {
		return err
	}
	if _, err = g.st(ctx, g.stmt.ackDevice).ExecContext(ctx, r.seq, r.seq, r.device); err != nil {
		return err
	}
	g.notes.acked(r.device, r.seq)
	return nil
}

func (r *ackReq) finish(err error) {
	if r.lazy {
		return
	}
	r.err = err
	close(r.done)
}

// TouchLater is TouchDevice for a caller that need not wait: the time
// rides in the committer's next transaction, or one of its own within
// AckDelay, and never moves last_seen back. A crash may lose it; the
// device's next connection or disconnection writes it again.
func (s *Store) TouchLater(id string, seen time.Time) { s.lazy.Touch(id, seen) }

// touchReq is a lazy touch in the group transaction; nobody waits for it.
type touchReq struct {
	device string
	ms     int64
}

func (r *touchReq) apply(ctx context.Context, g *groupTx) error {
	_, err := g.st(ctx, g.stmt.touch).ExecContext(ctx, r.ms, r.device)
	return err
}

func (r *touchReq) finish(error) {}

// execReq is a single statement run in the group transaction. Its own
// failure (a constraint, say) is its caller's error, not the
// transaction's: SQLite undoes just the statement.
type execReq struct {
	query string
	args  []any
	// outcomes: the statement records outcomes, so the committer's
	// numbers of them per channel no longer hold (notes.go).
	outcomes bool
	affected int64
	err      error
	done     chan struct{}
}

func (r *execReq) apply(ctx context.Context, g *groupTx) error {
	r.err, r.affected = nil, 0
	res, err := g.tx.ExecContext(ctx, r.query, r.args...)
	if err != nil {
		r.err = err
		return nil
	}
	r.affected, _ = res.RowsAffected()
	if r.outcomes && r.affected > 0 {
		g.notes.recount()
	}
	return nil
}

func (r *execReq) finish(err error) {
	if err != nil {
		r.err = err
	}
	close(r.done)
}

// exec runs one write statement through the committer and returns how many
// rows it changed.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	return s.submitExec(ctx, &execReq{query: query, args: args, done: make(chan struct{})})
}

func (s *Store) submitExec(ctx context.Context, r *execReq) (int64, error) {
	if err := s.submit(ctx, r, r.done); err != nil {
		return 0, err
	}
	return r.affected, r.err
}

// Pending returns the device's queued notifications above seq, in order.
func (s *Store) Pending(ctx context.Context, deviceID string, after uint64) ([]Queued, error) {
	rows, err := s.pending.QueryContext(ctx, deviceID, after, s.now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: pending: %w", err)
	}
	defer rows.Close()
	var out []Queued
	for rows.Next() {
		q := Queued{DeviceID: deviceID}
		var acc, due, exp int64
		if err := rows.Scan(&q.Seq, &q.ChannelID, &q.Kind, &q.Class, &q.MessageID, &q.Body, &q.TileKey, &acc, &due, &exp, &q.Urgency); err != nil {
			return nil, fmt.Errorf("sqlitestore: pending: %w", err)
		}
		q.AcceptedAt, q.DueAt = time.UnixMilli(acc), time.UnixMilli(due)
		if exp != 0 {
			q.ExpiresAt = time.UnixMilli(exp)
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// DeleteExpired deletes up to limit queued messages whose expiry is past
// and returns how many it deleted.
func (s *Store) DeleteExpired(ctx context.Context, limit int) (int, error) {
	now := s.now().UnixMilli()
	// What a sender named is remembered as expired first, so its message
	// resource says so (an ack landing in between says delivered instead).
	if _, err := s.submitExec(ctx, &execReq{query: `INSERT OR IGNORE INTO message_outcomes (channel_id, message_id, state, at)
		SELECT channel_id, message_id, ?, expires_at FROM queue
		WHERE expires_at > 0 AND expires_at <= ? AND message_id != '' LIMIT ?`, args: []any{store.MessageExpired, now, limit},
		outcomes: true, done: make(chan struct{})}); err != nil {
		return 0, fmt.Errorf("sqlitestore: delete expired: %w", err)
	}
	n, err := s.exec(ctx, `DELETE FROM queue WHERE (device_id, seq) IN
		(SELECT device_id, seq FROM queue WHERE expires_at > 0 AND expires_at <= ? LIMIT ?)`, now, limit)
	if err != nil {
		return 0, fmt.Errorf("sqlitestore: delete expired: %w", err)
	}
	return int(n), nil
}

func (s *Store) now() time.Time {
	if s.nowFunc != nil {
		return s.nowFunc()
	}
	return time.Now()
}

// expiryMillis is an expiry as stored: 0 for none.
func expiryMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// CreateDevice enrols a device.
func (s *Store) CreateDevice(ctx context.Context, d Device) error {
	_, err := s.exec(ctx, `INSERT INTO devices (id, secret_hash, source, created_at, last_seen, power) VALUES (?, ?, ?, ?, ?, ?)`,
		d.ID, d.SecretHash, d.Source, d.CreatedAt.UnixMilli(), d.LastSeen.UnixMilli(), nonEmpty(d.Power, "normal"))
	if isUnique(err) {
		return fmt.Errorf("sqlitestore: device %s: %w", d.ID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlitestore: create device: %w", err)
	}
	return nil
}

// Device looks a device up by id.
func (s *Store) Device(ctx context.Context, id string) (Device, error) {
	d := Device{ID: id}
	var created, seen, retired int64
	err := s.device.QueryRowContext(ctx, id).
		Scan(&d.SecretHash, &d.Source, &created, &seen, &d.Power, &d.AckedSeq, &retired, &d.NextSeq)
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("sqlitestore: device %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("sqlitestore: device: %w", err)
	}
	d.CreatedAt, d.LastSeen = time.UnixMilli(created), time.UnixMilli(seen)
	if retired != 0 {
		d.RetiredAt = time.UnixMilli(retired)
	}
	return d, nil
}

// DeviceStatus is Device without NextSeq: one database has no copy that
// could lag.
func (s *Store) DeviceStatus(ctx context.Context, id string) (Device, error) {
	d, err := s.Device(ctx, id)
	d.NextSeq = 0
	return d, err
}

// CountDevicesFromSource counts devices enrolled from one address.
func (s *Store) CountDevicesFromSource(ctx context.Context, source string) (int, error) {
	var n int
	if err := s.rd.QueryRowContext(ctx, `SELECT count(*) FROM devices WHERE source = ?`, source).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: count devices: %w", err)
	}
	return n, nil
}

// TouchDevice records when the device was last connected.
func (s *Store) TouchDevice(ctx context.Context, id string, seen time.Time) error {
	if _, err := s.exec(ctx, `UPDATE devices SET last_seen = ? WHERE id = ?`, seen.UnixMilli(), id); err != nil {
		return fmt.Errorf("sqlitestore: touch device: %w", err)
	}
	return nil
}

// SetPower records the device's power level.
func (s *Store) SetPower(ctx context.Context, id, power string) error {
	if _, err := s.exec(ctx, `UPDATE devices SET power = ? WHERE id = ?`, power, id); err != nil {
		return fmt.Errorf("sqlitestore: set power: %w", err)
	}
	return nil
}

const channelColumns = `id, device_id, app, name, token, service_name, toast, tile, domains, pinned, created_at, vapid_key`

func scanChannel(row interface{ Scan(...any) error }) (Channel, error) {
	var c Channel
	var domains, pinned string
	var created int64
	if err := row.Scan(&c.ID, &c.DeviceID, &c.App, &c.Name, &c.Token, &c.ServiceName, &c.Toast, &c.Tile, &domains, &pinned, &created, &c.VAPIDKey); err != nil {
		return Channel{}, err
	}
	c.CreatedAt = time.UnixMilli(created)
	if err := json.Unmarshal([]byte(domains), &c.Domains); err != nil {
		return Channel{}, fmt.Errorf("channel %s domains: %w", c.ID, err)
	}
	if err := json.Unmarshal([]byte(pinned), &c.Pinned); err != nil {
		return Channel{}, fmt.Errorf("channel %s pinned: %w", c.ID, err)
	}
	return c, nil
}

func (s *Store) channelWhere(ctx context.Context, where string, args ...any) (Channel, error) {
	return channelResult(scanChannel(s.rd.QueryRowContext(ctx, `SELECT `+channelColumns+` FROM channels WHERE `+where, args...)))
}

func channelResult(c Channel, err error) (Channel, error) {
	if errors.Is(err, sql.ErrNoRows) {
		return Channel{}, fmt.Errorf("sqlitestore: channel: %w", ErrNotFound)
	}
	if err != nil {
		return Channel{}, fmt.Errorf("sqlitestore: channel: %w", err)
	}
	return c, nil
}

// ChannelByToken finds the channel a URI token names. It is on every
// notification's path, so it is answered from memory when it can be.
func (s *Store) ChannelByToken(ctx context.Context, token string) (Channel, error) {
	if c, ok := s.channels.Get(token); ok {
		return c, nil
	}
	gen := s.channels.Generation()
	c, err := channelResult(scanChannel(s.byToken.QueryRowContext(ctx, token)))
	if err == nil {
		s.channels.Put(gen, c)
	}
	return c, err
}

// Channel finds a channel by id.
func (s *Store) Channel(ctx context.Context, id string) (Channel, error) {
	return s.channelWhere(ctx, `id = ?`, id)
}

// ChannelByApp finds the device's channel for app.
func (s *Store) ChannelByApp(ctx context.Context, deviceID, app string) (Channel, error) {
	return s.channelWhere(ctx, `device_id = ? AND app = ?`, deviceID, app)
}

// CountChannels counts the device's channels.
func (s *Store) CountChannels(ctx context.Context, deviceID string) (int, error) {
	var n int
	if err := s.rd.QueryRowContext(ctx, `SELECT count(*) FROM channels WHERE device_id = ?`, deviceID).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlitestore: count channels: %w", err)
	}
	return n, nil
}

// CreateChannel stores a new channel.
func (s *Store) CreateChannel(ctx context.Context, c Channel) error {
	_, err := s.exec(ctx, `INSERT INTO channels (`+channelColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.DeviceID, c.App, c.Name, c.Token, c.ServiceName, c.Toast, c.Tile, jsonList(c.Domains), jsonList(c.Pinned), c.CreatedAt.UnixMilli(), c.VAPIDKey)
	if isUnique(err) {
		return fmt.Errorf("sqlitestore: channel %s/%s: %w", c.DeviceID, c.App, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlitestore: create channel: %w", err)
	}
	return nil
}

// SetChannelToken rotates a channel's URI token.
func (s *Store) SetChannelToken(ctx context.Context, id, token string) error {
	defer s.channels.Drop(id)
	return s.execOne(ctx, "set channel token", `UPDATE channels SET token = ? WHERE id = ?`, token, id)
}

// SetBindings replaces a channel's shell bindings.
func (s *Store) SetBindings(ctx context.Context, id string, toast, tile bool, domains, pinned []string) error {
	defer s.channels.Drop(id)
	return s.execOne(ctx, "set bindings", `UPDATE channels SET toast = ?, tile = ?, domains = ?, pinned = ? WHERE id = ?`,
		toast, tile, jsonList(domains), jsonList(pinned), id)
}

// DeleteChannel removes a channel; its URI answers 404 from then on. Its
// queued notifications stay until acked, so sequence numbers keep no gaps.
func (s *Store) DeleteChannel(ctx context.Context, id string) error {
	defer s.channels.Drop(id)
	return s.execOne(ctx, "delete channel", `DELETE FROM channels WHERE id = ?`, id)
}

func (s *Store) execOne(ctx context.Context, what, query string, args ...any) error {
	n, err := s.exec(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("sqlitestore: %s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlitestore: %s: %w", what, ErrNotFound)
	}
	return nil
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
