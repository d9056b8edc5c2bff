package sqlitestore

import (
	"context"
	"slices"
)

// An acknowledgement records the delivered outcome of every named
// notification (an MPNS X-MessageID, a Web Push message) it deletes, in the
// transaction that deletes it, so that a sender never finds one neither
// queued nor delivered. Finding them was a statement over the acknowledged
// part of the queue, with a count per channel for the bound on outcomes,
// run for every ack even when no sender named anything: a tenth of the
// service's CPU, inside the commit every waiting sender waits for.
//
// namedQueued spares it. The committer is the only writer of the queue, so
// it can know, per device, the numbers of the named notifications queued:
// read from the database the first time an ack of the device needs them,
// then kept as Enqueue and Requeue add named ones and acks delete them. An
// ack that covers none of them only deletes. The notes may hold more than
// the queue does (a named notification merged, cancelled, expired or
// deleted with its device is noted until an ack covers it, or the device
// is dropped): that only costs the statement once more. They never hold
// less: a device is dropped, so read again, whenever its queue is emptied
// wholesale, and every note is dropped when a transaction fails, since
// what it undid (a delete an ack made, a read that saw its writes) may
// have been noted.
//
// Only the committer goroutine touches it, so it has no lock.
type namedQueued struct {
	// m holds, for each device read, its named notifications' numbers in
	// ascending order; a device absent from m is not known.
	m map[string][]uint64
}

// upTo reports whether the device's queue may hold a named notification
// at or below seq, reading the device's named numbers first if they are
// not known. It runs inside the transaction, so the read sees what the
// transaction wrote before it.
func (n *namedQueued) upTo(ctx context.Context, g *groupTx, device string, seq uint64) (bool, error) {
	seqs, ok := n.m[device]
	if !ok {
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
			seqs = append(seqs, s)
		}
		if err := rows.Err(); err != nil {
			return false, err
		}
		if n.m == nil {
			n.m = map[string][]uint64{}
		}
		n.m[device] = seqs
	}
	return len(seqs) > 0 && seqs[0] <= seq, nil
}

// add notes a named notification queued for the device. A device not yet
// read needs no note: its read will find it.
func (n *namedQueued) add(device string, seq uint64) {
	seqs, ok := n.m[device]
	if !ok {
		return
	}
	i, found := slices.BinarySearch(seqs, seq)
	if !found {
		n.m[device] = slices.Insert(seqs, i, seq)
	}
}

// acked forgets the device's notes at or below seq: the ack deleted them.
func (n *namedQueued) acked(device string, seq uint64) {
	seqs, ok := n.m[device]
	if !ok {
		return
	}
	i, _ := slices.BinarySearch(seqs, seq+1)
	if i == len(seqs) {
		// Nothing named is left: keep the device known with no notes
		// rather than an empty slice that holds on to its array.
		n.m[device] = nil
		return
	}
	n.m[device] = slices.Delete(seqs, 0, i)
}

// drop forgets a device: its next ack reads it again.
func (n *namedQueued) drop(device string) { delete(n.m, device) }

// reset forgets every device, after a transaction failed.
func (n *namedQueued) reset() { n.m = nil }
