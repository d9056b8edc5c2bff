package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

// The committer is the only writer of the devices' sequence numbers and of
// the queue, so it can know what it would otherwise read back inside every
// transaction, lengthening the commit each waiting sender waits for.
// deviceNotes is that knowledge, per device:
//
//   - Its next and acknowledged sequence numbers, read the first time an
//     enqueue needs them and then kept as enqueues and acks write them, so
//     numbering a notification is an UPDATE and an INSERT, not a SELECT
//     before them.
//   - The numbers of the named notifications (an MPNS X-MessageID, a Web
//     Push message) in its queue. An acknowledgement records the delivered
//     outcome of each named one it deletes, in the transaction that
//     deletes it, so that a sender never finds one neither queued nor
//     delivered; finding them is a statement over the acknowledged part of
//     the queue with a count per channel for the bound on outcomes. They
//     are read the first time an ack of the device needs them, then kept
//     as Enqueue and Requeue add named ones and acks delete them, so an ack
//     that deletes nothing named skips the statement. The notes may hold
//     more than the queue (a named notification merged, cancelled or
//     expired stays noted until an ack covers it), which only costs the
//     statement once more; never less.
//
// A device is forgotten, so read again, whenever its queue is emptied
// wholesale or its row deleted, and every device is forgotten when a
// transaction fails, since what it undid may have been noted. Only the
// committer goroutine touches the notes, so they have no lock.
type deviceNotes struct {
	m map[string]deviceNote
}

type deviceNote struct {
	// seqsRead: next and acked are known.
	seqsRead    bool
	next, acked uint64
	// namedRead: named is known, the device's named notifications'
	// numbers in ascending order.
	namedRead bool
	named     []uint64
}

// seqs returns the device's next and acknowledged numbers, or ErrNotFound
// when it has no row. It runs inside the transaction, so a read sees what
// the transaction wrote before it.
func (n *deviceNotes) seqs(ctx context.Context, g *groupTx, device string) (next, acked uint64, err error) {
	d := n.m[device]
	if d.seqsRead {
		return d.next, d.acked, nil
	}
	err = g.st(ctx, g.stmt.nextSeq).QueryRowContext(ctx, device).Scan(&next, &acked)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, fmt.Errorf("device %s: %w", device, ErrNotFound)
	}
	if err != nil {
		return 0, 0, err
	}
	d.seqsRead, d.next, d.acked = true, next, acked
	n.put(device, d)
	return next, acked, nil
}

// numbered notes that the device's next number is now next, and, when
// named, that a named notification holds seq.
func (n *deviceNotes) numbered(device string, seq, next uint64, named bool) {
	d, ok := n.m[device]
	if !ok {
		return
	}
	if d.seqsRead {
		d.next = next
	}
	if named && d.namedRead {
		// A device not read yet needs no note: its read will find it.
		if i, found := slices.BinarySearch(d.named, seq); !found {
			d.named = slices.Insert(d.named, i, seq)
		}
	}
	n.m[device] = d
}

// namedUpTo reports whether the device's queue may hold a named
// notification at or below seq, reading the device's named numbers first
// if they are not known.
func (n *deviceNotes) namedUpTo(ctx context.Context, g *groupTx, device string, seq uint64) (bool, error) {
	d := n.m[device]
	if !d.namedRead {
		rows, err := g.st(ctx, g.stmt.named).QueryContext(ctx, device)
		if err != nil {
			return false, err
		}
		defer rows.Close()
		for rows.Next() {
			var s uint64
			if err := rows.Scan(&s); err != nil {
				return false, err
			}
			d.named = append(d.named, s)
		}
		if err := rows.Err(); err != nil {
			return false, err
		}
		d.namedRead = true
		n.put(device, d)
	}
	return len(d.named) > 0 && d.named[0] <= seq, nil
}

// acked notes an ack up to seq: the device's numbers as ackDevice writes
// them, and its named notifications at or below seq gone.
func (n *deviceNotes) acked(device string, seq uint64) {
	d, ok := n.m[device]
	if !ok {
		return
	}
	if d.seqsRead {
		d.acked, d.next = max(d.acked, seq), max(d.next, seq+1)
	}
	if i, _ := slices.BinarySearch(d.named, seq+1); i == len(d.named) {
		// Nothing named is left: no array kept for it.
		d.named = nil
	} else {
		d.named = slices.Delete(d.named, 0, i)
	}
	n.m[device] = d
}

func (n *deviceNotes) put(device string, d deviceNote) {
	if n.m == nil {
		n.m = map[string]deviceNote{}
	}
	n.m[device] = d
}

// drop forgets a device: it is read again when next needed.
func (n *deviceNotes) drop(device string) { delete(n.m, device) }

// reset forgets every device, after a transaction failed.
func (n *deviceNotes) reset() { n.m = nil }
