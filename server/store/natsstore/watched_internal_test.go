package natsstore

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// event is one update a watch brings.
type event struct {
	jetstream.KeyValueEntry
	key string
	op  jetstream.KeyValueOp
	rev uint64
}

func (e event) Key() string                     { return e.key }
func (e event) Operation() jetstream.KeyValueOp { return e.op }
func (e event) Revision() uint64                { return e.rev }
func (e event) Value() []byte                   { return []byte("v") }
func (e event) Created() time.Time              { return time.Time{} }

// A copy keeps a deleted key's revision, for a compare-and-set, only
// until its sweep after deletedKeep (or its own keepDeleted); the keys it holds are never swept,
// and a key written again is a held key.
func TestWatchedForgetsDeletions(t *testing.T) {
	var gone []string
	c := newWatched(func(b []byte) (string, error) { return string(b), nil }, watchOpts[string]{gone: func(key string) { gone = append(gone, key) }})
	c.apply(event{key: "d.kept", op: jetstream.KeyValuePut, rev: 1})
	c.apply(event{key: "d.deleted", op: jetstream.KeyValuePut, rev: 2})
	c.apply(event{key: "d.deleted", op: jetstream.KeyValueDelete, rev: 3})
	c.apply(event{key: "d.back", op: jetstream.KeyValuePurge, rev: 4})
	c.apply(event{key: "d.back", op: jetstream.KeyValuePut, rev: 5})
	if len(gone) != 2 || gone[0] != "d.deleted" || gone[1] != "d.back" {
		t.Fatalf("told of deletions %q; want d.deleted, d.back", gone)
	}
	if _, rev, ok := c.entry("d.deleted"); ok || rev != 3 {
		t.Fatalf("deleted key: rev %d, held %v; want 3, false", rev, ok)
	}

	c.sweep(time.Now().Add(deletedKeep - time.Minute)) // the deletion is recent
	if _, rev, _ := c.entry("d.deleted"); rev != 3 {
		t.Fatalf("deleted key swept early: rev %d", rev)
	}
	c.sweep(time.Now().Add(deletedKeep + time.Second))
	if _, rev, _ := c.entry("d.deleted"); rev != 0 {
		t.Fatalf("deleted key after the sweep: rev %d; want 0", rev)
	}
	for key, want := range map[string]uint64{"d.kept": 1, "d.back": 5} {
		if _, rev, ok := c.entry(key); !ok || rev != want {
			t.Fatalf("%s after the sweep: rev %d, held %v; want %d, true", key, rev, ok, want)
		}
	}
	if len(c.deletedAt) != 0 || len(c.revs) != 2 {
		t.Fatalf("left %d deletion times, %d revisions; want 0, 2", len(c.deletedAt), len(c.revs))
	}
}

// The presence copy keeps a deletion for a day: a device that left and
// comes back within it is held again with one compare-and-set.
func TestWatchedKeepsDeletionsItsOwnTime(t *testing.T) {
	c := newWatched(func(b []byte) (string, error) { return string(b), nil }, watchOpts[string]{keepDeleted: 24 * time.Hour})
	c.apply(event{key: "d.left", op: jetstream.KeyValueDelete, rev: 9})
	c.sweep(time.Now().Add(23 * time.Hour))
	if _, rev, _ := c.entry("d.left"); rev != 9 {
		t.Fatalf("after 23 h: rev %d; want 9", rev)
	}
	c.sweep(time.Now().Add(25 * time.Hour))
	if _, rev, _ := c.entry("d.left"); rev != 0 {
		t.Fatalf("after 25 h: rev %d; want 0", rev)
	}
}
