package sqlitestore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/heraldpush/herald/server/store"
)

// The committer is the only writer of the devices' sequence numbers, of
// the queue and of the outcomes, so it can know what it would otherwise
// read back inside every transaction, lengthening the commit each waiting
// sender waits for. notes is that knowledge:
//
//   - Each device's next and acknowledged sequence numbers, read the first
//     time an enqueue needs them and then kept as enqueues and acks write
//     them, so numbering a notification is an UPDATE and an INSERT, not a
//     SELECT before them.
//   - The numbers and channels of the named notifications (an MPNS
//     X-MessageID, a Web Push message) in each device's queue. An
//     acknowledgement records the delivered outcome of each named one it
//     deletes, in the transaction that deletes it, so that a sender never
//     finds one neither queued nor delivered. They are read the first time
//     an ack of the device needs them, then kept as Enqueue and Requeue add
//     named ones and acks delete them, so an ack that deletes nothing named
//     skips the statement. The notes may hold more than the queue (a named
//     notification merged, cancelled or expired stays noted until an ack
//     covers it), which only costs the statement once more; never less.
//   - For each channel, a number of outcomes it holds at least as high as
//     the true one, counted the first time an ack needs it and raised by
//     every outcome recorded. Outcomes are bounded per channel
//     (store.MaxOutcomesPerChannel), which cost a count of the channel's
//     outcomes for every one recorded: while the notes say a channel is
//     below the bound by more than what an ack records, the ack records
//     without counting.
//
// A device is forgotten, so read again, whenever its queue is emptied
// wholesale or its row deleted; the channels' counts, when outcomes are
// deleted or recorded other than by an ack; and everything when a
// transaction fails, since what it undid may have been noted, or when
// another store has written the same database file (noteOthers). Only the
// committer goroutine touches the notes, so they have no lock.
type notes struct {
	devices  map[string]deviceNote
	outcomes map[string]int // per channel, at least as many as it holds
}

type deviceNote struct {
	// seqsRead: next and acked are known.
	seqsRead    bool
	next, acked uint64
	// namedRead: named is known, the device's named notifications in
	// ascending order of number.
	namedRead bool
	named     []namedNote
}

type namedNote struct {
	seq     uint64
	channel string
}

func cmpNamed(n namedNote, seq uint64) int { return cmp.Compare(n.seq, seq) }

// seqs returns the device's next and acknowledged numbers, or ErrNotFound
// when it has no row. It runs inside the transaction, so a read sees what
// the transaction wrote before it.
func (n *notes) seqs(ctx context.Context, g *groupTx, device string) (next, acked uint64, err error) {
	d := n.devices[device]
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

// numbered notes that q was queued with its number, so the device's next
// is the one above, and q itself if it is named.
func (n *notes) numbered(q Queued) {
	d, ok := n.devices[q.DeviceID]
	if !ok {
		return
	}
	if d.seqsRead {
		d.next = q.Seq + 1
	}
	if q.MessageID != "" && d.namedRead {
		// A device not read yet needs no note: its read will find it.
		if i, found := slices.BinarySearchFunc(d.named, q.Seq, cmpNamed); !found {
			d.named = slices.Insert(d.named, i, namedNote{seq: q.Seq, channel: q.ChannelID})
		}
	}
	n.devices[q.DeviceID] = d
}

// namedUpTo returns the device's named notifications at or below seq (or
// more, never fewer), reading the device's named notifications first if
// they are not known. The result is the notes' own: read, not kept.
func (n *notes) namedUpTo(ctx context.Context, g *groupTx, device string, seq uint64) ([]namedNote, error) {
	d := n.devices[device]
	if !d.namedRead {
		rows, err := g.st(ctx, g.stmt.named).QueryContext(ctx, device)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var nn namedNote
			if err := rows.Scan(&nn.seq, &nn.channel); err != nil {
				return nil, err
			}
			d.named = append(d.named, nn)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		d.namedRead = true
		n.put(device, d)
	}
	i, _ := slices.BinarySearchFunc(d.named, seq+1, cmpNamed)
	return d.named[:i], nil
}

// acked notes an ack up to seq: the device's numbers as ackDevice writes
// them, and its named notifications at or below seq gone.
func (n *notes) acked(device string, seq uint64) {
	d, ok := n.devices[device]
	if !ok {
		return
	}
	if d.seqsRead {
		d.acked, d.next = max(d.acked, seq), max(d.next, seq+1)
	}
	if i, _ := slices.BinarySearchFunc(d.named, seq+1, cmpNamed); i == len(d.named) {
		// Nothing named is left: no array kept for it.
		d.named = nil
	} else {
		d.named = slices.Delete(d.named, 0, i)
	}
	n.devices[device] = d
}

func (n *notes) put(device string, d deviceNote) {
	if n.devices == nil {
		n.devices = map[string]deviceNote{}
	}
	n.devices[device] = d
}

// belowBound reports whether recording an outcome for each of named keeps
// every channel among them within store.MaxOutcomesPerChannel, by the
// notes, counting the channels the notes have no number for.
func (n *notes) belowBound(ctx context.Context, g *groupTx, named []namedNote) (bool, error) {
	for i, nn := range named {
		if slices.ContainsFunc(named[:i], func(o namedNote) bool { return o.channel == nn.channel }) {
			continue
		}
		have, ok := n.outcomes[nn.channel]
		if !ok {
			if err := g.st(ctx, g.stmt.countOutcomes).QueryRowContext(ctx, nn.channel).Scan(&have); err != nil {
				return false, err
			}
			if n.outcomes == nil {
				n.outcomes = map[string]int{}
			}
			n.outcomes[nn.channel] = have
		}
		adding := 0
		for _, o := range named[i:] {
			if o.channel == nn.channel {
				adding++
			}
		}
		if have+adding > store.MaxOutcomesPerChannel {
			return false, nil
		}
	}
	return true, nil
}

// recorded notes that an outcome may have been recorded for each of named.
func (n *notes) recorded(named []namedNote) {
	for _, nn := range named {
		if have, ok := n.outcomes[nn.channel]; ok {
			n.outcomes[nn.channel] = have + 1
		}
	}
}

// drop forgets a device: it is read again when next needed.
func (n *notes) drop(device string) { delete(n.devices, device) }

// recount forgets the channels' numbers of outcomes: they are counted
// again when next needed.
func (n *notes) recount() { n.outcomes = nil }

// reset forgets everything, after a transaction failed.
func (n *notes) reset() { n.devices, n.outcomes = nil, nil }
