package bench

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/heraldpush/herald/internal/sqlitedb"
)

// The durable floor is the floor plus the fewest durable operations a
// push service that promises to lose nothing does per notification: the
// notification is inserted and committed (WAL, synchronous FULL, as the
// service's store) before it is sent and its POST answered, and the
// device's ack deletes it. One committer goroutine runs every
// transaction, and what waits while one runs goes into the next, so
// that an fsync is shared as the service's group commit shares it.

//go:embed floorschema/*.sql
var floorSchema embed.FS

// maxDurableBatch bounds one transaction, so that a burst does not hold
// every POST of it until the last row is written.
const maxDurableBatch = 1024

// durableStore is the durable floor's database and its committer.
type durableStore struct {
	file string
	db   *sql.DB
	ins  *sql.Stmt
	del  *sql.Stmt
	// ops feeds the committer; the floor closes it once nothing can send.
	ops  chan durableOp
	done chan struct{}
	// The committer's tally, read once it has stopped (close).
	commits, inserts, acks int64
	committing             time.Duration
}

// durableOp is a notification to insert, or an ack: delete the device's
// rows up to seq.
type durableOp struct {
	ack     bool
	device  string
	seq     uint64
	channel string
	body    []byte
	// committed has the transaction's outcome; nil for an ack, which
	// nobody waits for.
	committed chan error
}

// openDurable creates the durable floor's database in dir and starts its
// committer.
func openDurable(dir string) (*durableStore, error) {
	schema, err := fs.Sub(floorSchema, "floorschema")
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "durablefloor.db")
	db, err := sqlitedb.Open(context.Background(), file, schema)
	if err != nil {
		return nil, fmt.Errorf("bench: durable floor: %w", err)
	}
	// One writer, as the service's: the committer's connection.
	db.SetMaxOpenConns(1)
	d := &durableStore{file: file, db: db, ops: make(chan durableOp, 4096), done: make(chan struct{})}
	if d.ins, err = db.Prepare(`INSERT INTO notifications (device, seq, channel, body) VALUES (?, ?, ?, ?)`); err == nil {
		d.del, err = db.Prepare(`DELETE FROM notifications WHERE device = ? AND seq <= ?`)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("bench: durable floor: %w", err)
	}
	go d.commit()
	return d, nil
}

// insert commits a notification and returns once it is, or has failed.
func (d *durableStore) insert(device string, seq uint64, channel string, body []byte) error {
	op := durableOp{device: device, seq: seq, channel: channel, body: body, committed: make(chan error, 1)}
	d.ops <- op
	return <-op.committed
}

// ack has the device's rows up to seq deleted in the next transaction;
// nothing waits for it, as the service does not hold a device's reads
// for the commit of its ack.
func (d *durableStore) ack(device string, seq uint64) {
	d.ops <- durableOp{ack: true, device: device, seq: seq}
}

// commit is the committer: it takes what is queued, all of it up to
// maxDurableBatch, into one transaction, then tells each insert.
func (d *durableStore) commit() {
	defer close(d.done)
	batch := make([]durableOp, 0, maxDurableBatch)
	for op := range d.ops {
		batch = append(batch[:0], op)
	more:
		for len(batch) < maxDurableBatch {
			select {
			case op, ok := <-d.ops:
				if !ok {
					break more
				}
				batch = append(batch, op)
			default:
				break more
			}
		}
		start := time.Now()
		err := d.apply(batch)
		d.commits++
		d.committing += time.Since(start)
		for _, op := range batch {
			if op.committed != nil {
				d.inserts++
				op.committed <- err
			} else {
				d.acks++
			}
		}
	}
}

// apply runs one transaction: BEGIN IMMEDIATE (the DSN's _txlock), a
// prepared statement per operation, COMMIT.
func (d *durableStore) apply(batch []durableOp) error {
	tx, err := d.db.Begin()
	if err != nil {
		return err
	}
	ins, del := tx.Stmt(d.ins), tx.Stmt(d.del)
	for _, op := range batch {
		if op.ack {
			_, err = del.Exec(op.device, int64(op.seq))
		} else {
			_, err = ins.Exec(op.device, int64(op.seq), op.channel, op.body)
		}
		if err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

// rows is how many notifications are kept: committed and not yet acked.
func (d *durableStore) rows(ctx context.Context) (int64, error) {
	var n int64
	err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM notifications`).Scan(&n)
	return n, err
}

// waitEmpty waits until every kept notification is acked, or until
// timeout, and returns how many are left: the acks of the last
// deliveries may still be on their way when the drain ends.
func (d *durableStore) waitEmpty(ctx context.Context, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := d.rows(ctx)
		if err != nil || n == 0 || time.Now().After(deadline) {
			return n, err
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
}

// close stops the committer once it has applied what was queued, and
// closes the database. Nothing may insert or ack after it starts.
func (d *durableStore) close() error {
	close(d.ops)
	<-d.done
	d.ins.Close()
	d.del.Close()
	return d.db.Close()
}

// notifyDurable commits the notification under the device's next number,
// then sends it in its turn.
func (f *floor) notifyDurable(fc *floorConn, channelID string, body []byte) error {
	fc.mu.Lock()
	fc.seq++
	seq := fc.seq
	fc.mu.Unlock()
	err := f.durable.insert(channelID, seq, channelID, body)
	return fc.sendInTurn(seq, channelID, body, err)
}

// sendInTurn writes notification seq once every lower number is written
// or given up on, so frames reach the wire in sequence order (the device
// skips a number below one it applied) though their commits answer in
// any order. A failed commit gives its number up, unsent.
func (fc *floorConn) sendInTurn(seq uint64, channelID string, body []byte, committed error) error {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for fc.written+1 != seq {
		fc.turn.Wait()
	}
	fc.written = seq
	fc.turn.Broadcast()
	if committed != nil {
		return committed
	}
	return fc.writeNotify(seq, channelID, body)
}
