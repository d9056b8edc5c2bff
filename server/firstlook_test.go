package server

import (
	"slices"
	"strconv"
	"testing"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

// A hello says whether the device read left nothing queued above what the
// device has applied: NextSeq is above every number given, so one above
// last_seq means nothing was numbered above it.
func TestSessionStartNothingAbove(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lastSeq uint64
		nextSeq uint64
		want    bool
	}{
		{"new device, nothing ever queued", 0, 1, true},
		{"applied everything it was given", 41, 42, true},
		{"one given after what it applied", 41, 43, false},
		{"applied nothing of what it was given", 0, 2, false},
		{"not read (enrolment)", 0, 0, false},
		{"at the top of the range", store.MaxSeq, store.MaxSeq + 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := wire.Hello{Type: wire.TypeHello, Version: wire.Version, LastSeq: tc.lastSeq}
			_, do := newSessionState(&h, store.Device{ID: "dev", Power: "normal", LastSeen: st0, NextSeq: tc.nextSeq}, testLimits, st0)
			if do.nothingAbove != tc.want {
				t.Fatalf("nothingAbove %v, want %v", do.nothingAbove, tc.want)
			}
		})
	}
}

// A session primed empty sends what the committer tells it of from then
// on without ever reading the store; one not primed reads it at its first
// look, as before.
func TestSessionPrimedEmpty(t *testing.T) {
	for _, tc := range []struct {
		name      string
		prime     bool
		committed int // notifications told before the first look
		reads     int
	}{
		{"primed, nothing told", true, 0, 0},
		{"primed, commits told", true, 3, 0},
		{"not primed, nothing told", false, 0, 1},
		{"not primed, commits told", false, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := startState(t, wire.Hello{LastSeq: 5}, st0)
			q := newFakeQueue(5)
			if tc.prime {
				st.primeEmpty()
			}
			var told []store.Queued
			var want []uint64
			for range tc.committed {
				n := q.add(store.Queued{DueAt: st0})
				told, want = append(told, n), append(want, n.Seq)
			}
			got, _ := sentSeqs(t, st, q, st0, told...)
			if !slices.Equal(got, want) || q.reads != tc.reads {
				t.Fatalf("sent %v after %d reads; want %v after %d", got, q.reads, want, tc.reads)
			}
			// Later commits come through the copy either way.
			n := q.add(store.Queued{DueAt: st0})
			if got, _ := sentSeqs(t, st, q, st0, n); !slices.Equal(got, []uint64{n.Seq}) || q.reads != tc.reads {
				t.Fatalf("then sent %v after %d reads", got, q.reads)
			}
		})
	}
}

// queueKnownEmpty skips the read only when the store's device reads are
// current, the read showed nothing above, and no commit for the device
// (or its shard, or a resync) was told since before the read.
func TestQueueKnownEmpty(t *testing.T) {
	const dev = "dev"
	// A device whose count is not dev's.
	probe := newCommitsTold()
	other := ""
	for i := 0; other == ""; i++ {
		if id := "other" + strconv.Itoa(i); probe.shard(id) != probe.shard(dev) {
			other = id
		}
	}
	for _, tc := range []struct {
		name         string
		current      bool
		nothingAbove bool
		between      func(c *commitsTold) // what is told between the read and going live
		want         bool
	}{
		{"nothing told since", true, true, func(*commitsTold) {}, true},
		{"a commit for the device", true, true, func(c *commitsTold) { c.told(dev) }, false},
		{"a commit for a device of another shard", true, true, func(c *commitsTold) { c.told(other) }, true},
		{"a resync", true, true, (*commitsTold).resync, false},
		{"something above what it applied", true, false, func(*commitsTold) {}, false},
		{"a store whose reads may lag", false, true, func(*commitsTold) {}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{told: probe, devicesCurrent: tc.current}
			probe.told(dev) // counts start anywhere
			before := s.told.count(dev)
			tc.between(s.told)
			if got := s.queueKnownEmpty(dev, started{nothingAbove: tc.nothingAbove}, before); got != tc.want {
				t.Fatalf("queueKnownEmpty %v, want %v", got, tc.want)
			}
		})
	}
}
