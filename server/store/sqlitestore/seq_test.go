package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"math"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store/storetest"
)

var seqT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openSeqStore(t *testing.T, file string) *Store {
	t.Helper()
	s, err := Open(context.Background(), file, Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	return storetest.Start(t, s)
}

func seqDevice(t *testing.T, s *Store, id string) {
	t.Helper()
	if err := s.CreateDevice(context.Background(), Device{ID: id, SecretHash: []byte("h"), CreatedAt: seqT0, LastSeen: seqT0}); err != nil {
		t.Fatal(err)
	}
}

func seqNote(dev, msg string) Queued {
	return Queued{DeviceID: dev, ChannelID: "ch", Kind: "raw", Class: 3, MessageID: msg, Body: []byte(msg), AcceptedAt: seqT0, DueAt: seqT0}
}

// TestAckOutOfRange sends the acks that once stopped every write of the
// service: numbers SQLite cannot store, and one whose successor overflows.
// Each is refused or dropped before the committer, and another device's
// notifications keep being committed.
func TestAckOutOfRange(t *testing.T) {
	ctx := context.Background()
	s := openSeqStore(t, filepath.Join(t.TempDir(), "svc.db"))
	seqDevice(t, s, "attacker")
	seqDevice(t, s, "victim")
	for _, seq := range []uint64{math.MaxUint64, 1 << 63, math.MaxInt64} {
		if err := s.Ack(ctx, "attacker", seq); !errors.Is(err, ErrSeqRange) {
			t.Errorf("Ack(%d) = %v, want ErrSeqRange", seq, err)
		}
		s.AckLater("attacker", seq)
		if q, err := s.Enqueue(ctx, seqNote("victim", "m"), EnqueueOptions{}); err != nil {
			t.Fatalf("after an ack of %d: the victim's enqueue failed: %v", seq, err)
		} else if q.Seq == 0 {
			t.Fatalf("after an ack of %d: no sequence number", seq)
		}
	}
	if waiting := s.lazy.Len(); waiting != 0 {
		t.Fatalf("%d out-of-range lazy acks kept", waiting)
	}

	// The highest storable number is taken; the device's numbers are then
	// used up, which fails its own notifications and nobody else's.
	if err := s.Ack(ctx, "attacker", MaxSeq); err != nil {
		t.Fatalf("Ack(MaxSeq): %v", err)
	}
	d, err := s.Device(ctx, "attacker")
	if err != nil || d.NextSeq != MaxSeq+1 || d.AckedSeq != MaxSeq {
		t.Fatalf("device after Ack(MaxSeq): %+v %v", d, err)
	}
	if _, err := s.Enqueue(ctx, seqNote("attacker", "x"), EnqueueOptions{}); !errors.Is(err, ErrSeqRange) {
		t.Fatalf("enqueue past MaxSeq: %v, want ErrSeqRange", err)
	}
	if _, err := s.Enqueue(ctx, seqNote("victim", "after"), EnqueueOptions{}); err != nil {
		t.Fatalf("the victim's enqueue failed: %v", err)
	}
	var typ string
	if err := s.db.QueryRow(`SELECT typeof(next_seq) FROM devices WHERE id = 'attacker'`).Scan(&typ); err != nil || typ != "integer" {
		t.Fatalf("next_seq stored as %q (%v), want integer", typ, err)
	}
}

// failingReq is a request the transaction cannot survive.
type failingReq struct{ err error }

func (f *failingReq) apply(context.Context, *groupTx) error { return errors.New("broken request") }
func (f *failingReq) finish(err error)                      { f.err = err }

// TestFailedRequestAnsweredAlone puts a request that fails its transaction
// and a lazy ack SQLite refuses into one group with two notifications: the
// notifications are committed, the bad request alone gets the error, and
// the bad ack is not kept to fail the next transaction.
func TestFailedRequestAnsweredAlone(t *testing.T) {
	ctx := context.Background()
	s := openSeqStore(t, filepath.Join(t.TempDir(), "svc.db"))
	seqDevice(t, s, "a")
	seqDevice(t, s, "b")
	var told []Queued
	s.OnCommitted(func(q Queued) { told = append(told, q) })
	// Straight into the group, past AckLater's check, as a bad ack would
	// have been kept by an earlier version after a failed commit.
	badAck := &ackReq{device: "a", seq: 1 << 63, lazy: true}

	ea := &enqueueReq{in: seqNote("a", "a1"), done: make(chan struct{})}
	bad := &failingReq{}
	eb := &enqueueReq{in: seqNote("b", "b1"), done: make(chan struct{})}
	commitsBefore := s.Commits()
	// The committer is idle (nothing was submitted and nothing kicked),
	// so the test may run a group on its behalf.
	s.commitBatch([]writeReq{ea, bad, badAck, eb})

	if ea.err != nil || ea.q.Seq != 1 || eb.err != nil || eb.q.Seq != 1 {
		t.Fatalf("notifications: a %+v %v, b %+v %v", ea.q, ea.err, eb.q, eb.err)
	}
	if bad.err == nil {
		t.Fatal("the failing request was told it succeeded")
	}
	if len(told) != 2 {
		t.Fatalf("OnCommitted told of %d notifications, want 2", len(told))
	}
	for dev, want := range map[string]string{"a": "a1", "b": "b1"} {
		p, err := s.Pending(ctx, dev, 0)
		if err != nil || len(p) != 1 || p[0].MessageID != want {
			t.Fatalf("pending for %s: %+v %v", dev, p, err)
		}
	}
	if kept := s.lazy.Len(); kept != 0 {
		t.Fatalf("the refused lazy ack was kept for the next transaction")
	}
	// Later transactions go through.
	if q, err := s.Enqueue(ctx, seqNote("a", "a2"), EnqueueOptions{}); err != nil || q.Seq != 2 {
		t.Fatalf("next enqueue: %+v %v", q, err)
	}
	if s.Commits() < commitsBefore+3 {
		t.Fatalf("commits %d → %d, want the two notifications and the next one committed", commitsBefore, s.Commits())
	}
}

// TestMigrationRepairsRealSeq opens a database that an overflowing ack left
// with a REAL next_seq and an out-of-range acked_seq: the migration makes
// them integers again, numbering on above what is queued, and a trigger
// refuses any later attempt to store a non-integer.
func TestMigrationRepairsRealSeq(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "svc.db")
	db, err := sql.Open("sqlite3", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0001_init.sql", "0002_queue_tile.sql"} {
		body, err := fs.ReadFile(migrations, path.Join("migrations", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(body)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, q := range []string{
		`PRAGMA user_version = 2`,
		`INSERT INTO devices (id, secret_hash, created_at, last_seen, next_seq, acked_seq) VALUES ('poisoned', x'00', 0, 0, 9223372036854775807 + 1, 9223372036854775807)`,
		`INSERT INTO devices (id, secret_hash, created_at, last_seen, next_seq, acked_seq) VALUES ('queued', x'00', 0, 0, 9223372036854775807 + 1, 3)`,
		`INSERT INTO queue (device_id, seq, channel_id, kind, class, body, accepted_at, due_at) VALUES ('queued', 7, 'ch', 'raw', 3, x'00', 0, 0)`,
		`INSERT INTO devices (id, secret_hash, created_at, last_seen, next_seq, acked_seq) VALUES ('healthy', x'00', 0, 0, 12, 10)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var typ string
	if err := db.QueryRow(`SELECT typeof(next_seq) FROM devices WHERE id = 'poisoned'`).Scan(&typ); err != nil || typ != "real" {
		t.Fatalf("setup: next_seq is %q (%v), want real", typ, err)
	}
	db.Close()

	s := openSeqStore(t, file)
	for _, tt := range []struct {
		id            string
		next, acked   uint64
		firstEnqueued uint64
	}{
		{"poisoned", 1, 0, 1},
		{"queued", 8, 3, 8},
		{"healthy", 12, 10, 12},
	} {
		d, err := s.Device(ctx, tt.id)
		if err != nil || d.NextSeq != tt.next || d.AckedSeq != tt.acked {
			t.Errorf("%s: next %d acked %d (%v), want next %d acked %d", tt.id, d.NextSeq, d.AckedSeq, err, tt.next, tt.acked)
			continue
		}
		if q, err := s.Enqueue(ctx, seqNote(tt.id, "m"), EnqueueOptions{}); err != nil || q.Seq != tt.firstEnqueued {
			t.Errorf("%s: enqueue %+v %v, want seq %d", tt.id, q, err, tt.firstEnqueued)
		}
	}
	_, err = s.db.Exec(`UPDATE devices SET next_seq = next_seq + 0.5 WHERE id = 'healthy'`)
	if err == nil {
		t.Fatal("a REAL next_seq was stored")
	}
	_, err = s.db.Exec(`UPDATE devices SET acked_seq = 9223372036854775807 + 1 WHERE id = 'healthy'`)
	if err == nil {
		t.Fatal("an overflowed acked_seq was stored")
	}
}
