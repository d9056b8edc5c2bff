package natsstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// lagging is a bucket whose gets are answered by a replica a few answers
// behind: the first behind gets return what it held before.
type lagging struct {
	jetstream.KeyValue
	behind int
	before func() (jetstream.KeyValueEntry, error)
	now    jetstream.KeyValueEntry
	gets   int
}

func (l *lagging) Get(context.Context, string) (jetstream.KeyValueEntry, error) {
	l.gets++
	if l.gets <= l.behind {
		return l.before()
	}
	return l.now, nil
}

type entry struct {
	jetstream.KeyValueEntry
	rev uint64
}

func (e entry) Revision() uint64 { return e.rev }

func notFoundYet() (jetstream.KeyValueEntry, error) { return nil, jetstream.ErrKeyNotFound }

// A read of a key this node wrote is never answered older than the write,
// whichever replica answers; a key it did not write, or whose write the
// watch has brought, is read once.
func TestReadNeverOlderThanOwnWrite(t *testing.T) {
	for _, tc := range []struct {
		name     string
		written  uint64 // 0: this node wrote nothing
		before   func() (jetstream.KeyValueEntry, error)
		wantGets int
	}{
		{"created here, replica has not got it", 7, notFoundYet, 3},
		{"updated here, replica has the old value", 7, func() (jetstream.KeyValueEntry, error) { return entry{rev: 5}, nil }, 3},
		{"not written here", 0, notFoundYet, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &watched[int]{vals: map[string]int{}, revs: map[string]uint64{}, learned: map[string]time.Time{},
				floor: map[string]uint64{}, put: map[string]bool{}}
			if tc.written != 0 {
				c.written("k", tc.written)
			}
			kv := &lagging{behind: 2, before: tc.before, now: entry{rev: 7}}
			e, err := c.read(context.Background(), kv, "k")
			if kv.gets != tc.wantGets {
				t.Fatalf("%d gets, want %d", kv.gets, tc.wantGets)
			}
			if tc.written != 0 && (err != nil || e.Revision() != 7) {
				t.Fatalf("read %v, %v; want revision 7", e, err)
			}
		})
	}
}

// A key this node deleted reads as not found at once: not found is what
// the deletion leaves.
func TestReadAfterOwnDeletion(t *testing.T) {
	c := &watched[int]{vals: map[string]int{}, revs: map[string]uint64{}, learned: map[string]time.Time{},
		floor: map[string]uint64{}, put: map[string]bool{}}
	c.deleted("k", 7)
	kv := &lagging{behind: 5, before: notFoundYet}
	if _, err := c.read(context.Background(), kv, "k"); !errors.Is(err, jetstream.ErrKeyNotFound) || kv.gets != 1 {
		t.Fatalf("err %v after %d gets; want not found after 1", err, kv.gets)
	}
	// A replica still holding the deleted value is older than the deletion.
	kv = &lagging{behind: 2, before: func() (jetstream.KeyValueEntry, error) { return entry{rev: 7}, nil }, now: entry{rev: 9}}
	if _, err := c.read(context.Background(), kv, "k"); err != nil || kv.gets != 3 {
		t.Fatalf("err %v after %d gets; want the newer answer after 3", err, kv.gets)
	}
}

// A read waiting for a lagging replica gives up with the caller's context.
func TestReadEndsWithContext(t *testing.T) {
	c := &watched[int]{vals: map[string]int{}, revs: map[string]uint64{}, learned: map[string]time.Time{},
		floor: map[string]uint64{}, put: map[string]bool{}}
	c.written("k", 7)
	ctx, cancel := context.WithCancel(context.Background())
	kv := &lagging{behind: 1 << 30, before: func() (jetstream.KeyValueEntry, error) {
		cancel()
		return notFoundYet()
	}}
	if _, err := c.read(ctx, kv, "k"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("err %v, want the last answer, not found", err)
	}
}
