package server

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

// The session's rules, by tables, without sockets or a database: the
// state is stepped with frames, pings and times, over fakeQueue.

var st0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var testLimits = sessionLimits{minHeartbeat: time.Minute, maxIdle: time.Hour, touchEvery: 9 * time.Hour}

// fakeQueue is one device's queue as the store keeps it, numbered in
// commit order.
type fakeQueue struct {
	qs       []store.Queued
	next     uint64
	reads    int
	requeued []uint64
	err      error
}

func newFakeQueue(lastSeq uint64) *fakeQueue { return &fakeQueue{next: lastSeq + 1} }

func (f *fakeQueue) Pending(_ string, after uint64) ([]store.Queued, error) {
	f.reads++
	if f.err != nil {
		return nil, f.err
	}
	var out []store.Queued
	for _, q := range f.qs {
		if q.Seq > after {
			out = append(out, q)
		}
	}
	return out, nil
}

func (f *fakeQueue) Requeue(_ string, seq uint64) (store.Queued, error) {
	if f.err != nil {
		return store.Queued{}, f.err
	}
	i := slices.IndexFunc(f.qs, func(q store.Queued) bool { return q.Seq == seq })
	if i < 0 {
		return store.Queued{}, store.ErrNotFound
	}
	q := f.qs[i]
	f.qs = slices.Delete(f.qs, i, i+1)
	q.Seq, f.next = f.next, f.next+1
	f.qs = append(f.qs, q)
	f.requeued = append(f.requeued, seq)
	return q, nil
}

// add commits a notification and returns it as the committer tells of it.
func (f *fakeQueue) add(q store.Queued) store.Queued {
	q.Seq, f.next = f.next, f.next+1
	if q.MessageID == "" {
		q.MessageID = "m"
	}
	f.qs = append(f.qs, q)
	return q
}

// ack deletes what the device acknowledged.
func (f *fakeQueue) ack(seq uint64) {
	f.qs = slices.DeleteFunc(f.qs, func(q store.Queued) bool { return q.Seq <= seq })
}

func startState(t *testing.T, h wire.Hello, now time.Time) *sessionState {
	t.Helper()
	h.Type, h.Version = wire.TypeHello, wire.Version
	st, _ := newSessionState(&h, store.Device{ID: "dev", Power: "normal", LastSeen: now}, testLimits, now)
	return st
}

// sentSeqs steps the writer once and returns the seqs it writes.
func sentSeqs(t *testing.T, st *sessionState, q *fakeQueue, now time.Time, committed ...store.Queued) ([]uint64, time.Time) {
	t.Helper()
	frames, next, err := st.out(now, true, committed, false, q)
	if err != nil {
		t.Fatalf("out: %v", err)
	}
	var seqs []uint64
	for _, f := range frames {
		n, ok := f.(wire.Notify)
		if !ok {
			t.Fatalf("frame %T, want notify", f)
		}
		for _, x := range n.Notifications {
			seqs = append(seqs, x.Seq)
		}
	}
	return seqs, next
}

func TestSessionStart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		hello     wire.Hello
		dev       store.Device
		savePower bool
		touch     bool
		ack       uint64
		urgency   mpns.Urgency
		bound     time.Duration
	}{
		{"same power, seen a moment ago", wire.Hello{LastSeq: 0}, store.Device{Power: "normal", LastSeen: st0.Add(-time.Minute)},
			false, false, 0, mpns.UrgencyVeryLow, defaultHeartbeat + ackGrace},
		{"new power", wire.Hello{Power: "low"}, store.Device{Power: "normal", LastSeen: st0},
			true, false, 0, mpns.UrgencyVeryLow, defaultHeartbeat + ackGrace},
		{"seen long ago", wire.Hello{LastSeq: 7}, store.Device{Power: "normal", LastSeen: st0.Add(-10 * time.Hour)},
			false, true, 7, mpns.UrgencyVeryLow, defaultHeartbeat + ackGrace},
		{"urgency and heartbeat", wire.Hello{Urgency: "normal", Heartbeat: 600}, store.Device{Power: "normal", LastSeen: st0},
			false, false, 0, mpns.UrgencyNormal, 10*time.Minute + ackGrace},
		{"applied what it acknowledged already", wire.Hello{LastSeq: 7}, store.Device{Power: "normal", LastSeen: st0, AckedSeq: 7, NextSeq: 8},
			false, false, 0, mpns.UrgencyVeryLow, defaultHeartbeat + ackGrace},
		{"applied more than it acknowledged", wire.Hello{LastSeq: 7}, store.Device{Power: "normal", LastSeen: st0, AckedSeq: 5, NextSeq: 8},
			false, false, 7, mpns.UrgencyVeryLow, defaultHeartbeat + ackGrace},
		{"acknowledged more than it says it applied", wire.Hello{LastSeq: 3}, store.Device{Power: "normal", LastSeen: st0, AckedSeq: 5, NextSeq: 8},
			false, false, 0, mpns.UrgencyVeryLow, defaultHeartbeat + ackGrace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.hello
			h.Type, h.Version = wire.TypeHello, wire.Version
			tc.dev.ID = "dev"
			st, do := newSessionState(&h, tc.dev, testLimits, st0)
			if do.savePower != tc.savePower || !do.touch.IsZero() != tc.touch || do.ack != tc.ack {
				t.Fatalf("started %+v; want savePower %v touch %v ack %d", do, tc.savePower, tc.touch, tc.ack)
			}
			if st.urgency != tc.urgency || st.ackBound != tc.bound || st.sent != h.LastSeq {
				t.Fatalf("urgency %v bound %v sent %d", st.urgency, st.ackBound, st.sent)
			}
		})
	}
}

// TestSessionAckBounds: an ack may cover only what the hello said was
// applied or what was written on this connection.
func TestSessionAckBounds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lastSeq  uint64
		queued   int // notifications written before the ack
		ack      uint64
		end      bool
		storeAck uint64
	}{
		{"nothing sent, ack 0", 0, 0, 0, false, 0},
		{"nothing sent, ack 1", 0, 0, 1, true, 0},
		{"hello's last_seq", 5, 0, 5, false, 5},
		{"below last_seq", 5, 0, 3, false, 3},
		{"above last_seq", 5, 0, 6, true, 0},
		{"all written", 5, 3, 8, false, 8},
		{"part written", 5, 3, 6, false, 6},
		{"past written", 5, 3, 9, true, 0},
		{"largest number", 5, 3, ^uint64(0), true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := startState(t, wire.Hello{LastSeq: tc.lastSeq}, st0)
			q := newFakeQueue(tc.lastSeq)
			var committed []store.Queued
			for range tc.queued {
				committed = append(committed, q.add(store.Queued{DueAt: st0}))
			}
			if got, _ := sentSeqs(t, st, q, st0, committed...); len(got) != tc.queued {
				t.Fatalf("wrote %v", got)
			}
			do := st.frame(&wire.Ack{Type: wire.TypeAck, Seq: tc.ack}, st0.Add(time.Second))
			if (do.end != nil) != tc.end {
				t.Fatalf("end %+v, want end %v", do.end, tc.end)
			}
			if do.end != nil && do.end.code != wire.CloseProtocol {
				t.Fatalf("closed with %d", do.end.code)
			}
			if do.ack != tc.storeAck {
				t.Fatalf("store ack %d, want %d", do.ack, tc.storeAck)
			}
		})
	}
}

// TestSessionUrgency: notifications below the device's minimum are held,
// neither sent nor dropped; one held below what is sent past it is moved
// above it first, so a cumulative ack cannot delete it; a lower minimum
// lets them go.
func TestSessionUrgency(t *testing.T) {
	vl, lo, no, hi := int(mpns.UrgencyVeryLow), int(mpns.UrgencyLow), int(mpns.UrgencyNormal), int(mpns.UrgencyHigh)
	for _, tc := range []struct {
		name      string
		minimum   string
		urgencies []int
		sent      []uint64 // seqs written first
		requeued  []uint64
		lower     string   // the minimum a state frame then reports
		thenSent  []uint64 // seqs written after it
	}{
		{"everything taken", "", []int{vl, lo, no, hi}, []uint64{1, 2, 3, 4}, nil, "", nil},
		{"high only", "high", []int{hi, hi}, []uint64{1, 2}, nil, "", nil},
		{"all held", "high", []int{lo, no}, nil, nil, "very-low", []uint64{1, 2}},
		{"held after the last sent stay", "normal", []int{hi, lo}, []uint64{1}, nil, "low", []uint64{2}},
		{"held below the last sent move up", "normal", []int{lo, hi, vl, no}, []uint64{2, 4}, []uint64{1, 3}, "very-low", []uint64{5, 6}},
		{"raised minimum holds nothing new", "low", []int{lo, hi}, []uint64{1, 2}, nil, "high", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := startState(t, wire.Hello{Urgency: tc.minimum}, st0)
			q := newFakeQueue(0)
			var committed []store.Queued
			for _, u := range tc.urgencies {
				committed = append(committed, q.add(store.Queued{DueAt: st0, Urgency: u}))
			}
			got, next := sentSeqs(t, st, q, st0, committed...)
			if !slices.Equal(got, tc.sent) {
				t.Fatalf("sent %v, want %v", got, tc.sent)
			}
			if !slices.Equal(q.requeued, tc.requeued) {
				t.Fatalf("requeued %v, want %v", q.requeued, tc.requeued)
			}
			if len(got) > 0 {
				if want := st0.Add(st.ackBound); !next.Equal(want) {
					t.Fatalf("next %v, want the ack deadline %v", next, want)
				}
				q.ack(st.sent)
				st.frame(&wire.Ack{Type: wire.TypeAck, Seq: st.sent}, st0)
			}
			if tc.lower == "" {
				return
			}
			do := st.frame(&wire.State{Type: wire.TypeState, ReqID: 1, Power: "normal", Urgency: tc.lower}, st0)
			if do.request == nil {
				t.Fatal("a state frame is not answered")
			}
			if do.wake != (wire.MinUrgency(tc.lower) < wire.MinUrgency(tc.minimum)) {
				t.Fatalf("wake %v after %q → %q", do.wake, tc.minimum, tc.lower)
			}
			got, _ = sentSeqs(t, st, q, st0)
			if !slices.Equal(got, tc.thenSent) {
				t.Fatalf("then sent %v, want %v", got, tc.thenSent)
			}
		})
	}
}

// TestSessionMirror: what the committer tells of is sent from the
// session's copy of the queue, without a read of the store, until the copy
// would grow past maxMirrored or the store asks for a read (resync).
func TestSessionMirror(t *testing.T) {
	t.Run("commits need no read", func(t *testing.T) {
		st := startState(t, wire.Hello{}, st0)
		q := newFakeQueue(0)
		sentSeqs(t, st, q, st0) // primes: one read
		for i := range 5 {
			got, _ := sentSeqs(t, st, q, st0, q.add(store.Queued{DueAt: st0}))
			if !slices.Equal(got, []uint64{uint64(i + 1)}) {
				t.Fatalf("sent %v", got)
			}
		}
		if q.reads != 1 {
			t.Fatalf("%d reads of the store, want 1", q.reads)
		}
	})
	t.Run("a merged tile update replaces the one it merged", func(t *testing.T) {
		st := startState(t, wire.Hello{}, st0)
		q := newFakeQueue(0)
		sentSeqs(t, st, q, st0)
		// Held for a deadline, then merged into a later one.
		first := q.add(store.Queued{DueAt: st0.Add(time.Hour), Kind: "tile"})
		if got, next := sentSeqs(t, st, q, st0, first); got != nil || !next.Equal(st0.Add(time.Hour)) {
			t.Fatalf("sent %v, next %v", got, next)
		}
		q.qs = nil // the store deleted it in the merge
		merged := q.add(store.Queued{DueAt: st0, Kind: "tile", Merged: first.Seq})
		got, _ := sentSeqs(t, st, q, st0, merged)
		if !slices.Equal(got, []uint64{merged.Seq}) {
			t.Fatalf("sent %v, want only the merge %d", got, merged.Seq)
		}
	})
	t.Run("told twice, sent once", func(t *testing.T) {
		st := startState(t, wire.Hello{}, st0)
		q := newFakeQueue(0)
		a := q.add(store.Queued{DueAt: st0})
		// The first look reads the store, which holds a already; the
		// committer's word of it comes with the same look.
		got, _ := sentSeqs(t, st, q, st0, a)
		if !slices.Equal(got, []uint64{1}) {
			t.Fatalf("sent %v", got)
		}
		got, _ = sentSeqs(t, st, q, st0, a)
		if got != nil {
			t.Fatalf("sent %v again", got)
		}
	})
	t.Run("past maxMirrored the store is read", func(t *testing.T) {
		st := startState(t, wire.Hello{}, st0)
		q := newFakeQueue(0)
		sentSeqs(t, st, q, st0)
		var committed []store.Queued
		for range maxMirrored + 1 {
			committed = append(committed, q.add(store.Queued{DueAt: st0.Add(time.Hour)}))
		}
		got, next := sentSeqs(t, st, q, st0, committed...)
		if got != nil || !next.Equal(st0.Add(time.Hour)) || q.reads != 2 {
			t.Fatalf("sent %v next %v after %d reads", got, next, q.reads)
		}
		got, _ = sentSeqs(t, st, q, st0.Add(time.Hour))
		if len(got) != maxMirrored+1 || got[0] != 1 {
			t.Fatalf("sent %d from %v", len(got), got[:1])
		}
	})
	t.Run("resync reads the store", func(t *testing.T) {
		st := startState(t, wire.Hello{}, st0)
		q := newFakeQueue(0)
		sentSeqs(t, st, q, st0)
		// A commit the committer never told of.
		q.add(store.Queued{DueAt: st0})
		if got, _ := sentSeqs(t, st, q, st0); got != nil {
			t.Fatalf("sent %v without being told", got)
		}
		frames, _, err := st.out(st0, true, nil, true, q)
		if err != nil || len(frames) != 1 || q.reads != 2 {
			t.Fatalf("resync: %d frames, %d reads, err %v", len(frames), q.reads, err)
		}
	})
	t.Run("a failed read ends nothing but is reported", func(t *testing.T) {
		st := startState(t, wire.Hello{}, st0)
		q := newFakeQueue(0)
		q.err = errors.New("disk on fire")
		if _, _, err := st.out(st0, true, nil, false, q); !errors.Is(err, q.err) {
			t.Fatalf("err %v", err)
		}
		q.err = nil
		q.add(store.Queued{DueAt: st0})
		if got, _ := sentSeqs(t, st, q, st0); !slices.Equal(got, []uint64{1}) {
			t.Fatalf("after the failure sent %v", got)
		}
	})
}

// TestSessionDelayedClasses: nothing goes before the earliest deadline;
// then everything unsent goes at once, so the radio wakes once.
func TestSessionDelayedClasses(t *testing.T) {
	st := startState(t, wire.Hello{}, st0)
	q := newFakeQueue(0)
	a := q.add(store.Queued{DueAt: st0.Add(900 * time.Second)})
	b := q.add(store.Queued{DueAt: st0.Add(450 * time.Second)})
	got, next := sentSeqs(t, st, q, st0, a, b)
	if got != nil || !next.Equal(st0.Add(450*time.Second)) {
		t.Fatalf("sent %v, next %v", got, next)
	}
	got, _ = sentSeqs(t, st, q, st0.Add(450*time.Second))
	if !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("sent %v at the first deadline", got)
	}
}

// TestSessionUnacknowledged: what was written and stays unacknowledged
// past the bound ends the session; an ack that covers it, or makes
// progress, keeps it.
func TestSessionUnacknowledged(t *testing.T) {
	bound := ackBoundFor(0, testLimits)
	for _, tc := range []struct {
		name    string
		acks    []time.Duration // after the write, acking what was sent
		partial bool            // the acks cover only the first of two frames
		at      time.Duration   // when the writer looks again
		end     bool
	}{
		{"no ack, just before", nil, false, bound - time.Nanosecond, false},
		{"no ack, at the bound", nil, false, bound, true},
		{"no ack, long after", nil, false, 10 * bound, true},
		{"acked", []time.Duration{time.Second}, false, 10 * bound, false},
		{"acked late, still in time", []time.Duration{bound - time.Second}, false, 10 * bound, false},
		{"progress restarts the bound", []time.Duration{bound - time.Second}, true, 2*bound - 2*time.Second, false},
		{"progress then silence", []time.Duration{bound - time.Second}, true, 2*bound - time.Second, true},
		// The same partial ack again is no progress: a device cannot keep
		// a dead connection trusted by repeating itself.
		{"repeated partial ack", []time.Duration{time.Second, bound - time.Second}, true, bound + time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := startState(t, wire.Hello{}, st0)
			q := newFakeQueue(0)
			sentSeqs(t, st, q, st0)
			first := q.add(store.Queued{DueAt: st0, Body: make([]byte, mpns.MaxBodySize)})
			var committed []store.Queued
			committed = append(committed, first)
			for range 20 { // more than one frame
				committed = append(committed, q.add(store.Queued{DueAt: st0, Body: make([]byte, mpns.MaxBodySize)}))
			}
			frames, next, err := st.out(st0, true, committed, false, q)
			if err != nil || len(frames) < 2 || !next.Equal(st0.Add(bound)) {
				t.Fatalf("%d frames, next %v, err %v", len(frames), next, err)
			}
			for _, d := range tc.acks {
				seq := st.sent
				if tc.partial {
					seq = first.Seq
				}
				if do := st.frame(&wire.Ack{Type: wire.TypeAck, Seq: seq}, st0.Add(d)); do.end != nil {
					t.Fatalf("ack ended the session: %+v", do.end)
				}
			}
			_, _, err = st.out(st0.Add(tc.at), false, nil, false, q)
			if errors.Is(err, errUnacknowledged) != tc.end {
				t.Fatalf("at %v: err %v, want the end %v", tc.at, err, tc.end)
			}
		})
	}
}

func TestAckBoundFor(t *testing.T) {
	lim := sessionLimits{minHeartbeat: time.Minute, maxIdle: time.Hour}
	for _, tc := range []struct {
		heartbeat int
		want      time.Duration
	}{
		{0, defaultHeartbeat + ackGrace},
		{1, time.Minute + ackGrace}, // never below the floor the device may ping at
		{300, 5*time.Minute + ackGrace},
		{28 * 60, 28*time.Minute + ackGrace},
		{wire.MaxHeartbeat, time.Hour + ackGrace}, // never past max_idle
	} {
		if got := ackBoundFor(tc.heartbeat, lim); got != tc.want {
			t.Errorf("heartbeat %ds: bound %v, want %v", tc.heartbeat, got, tc.want)
		}
	}
}

// TestSessionPings: a heartbeat faster than 9/10 of MinHeartbeat ends the
// session (1008); last_seen is refreshed every touchEvery.
func TestSessionPings(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pings []time.Duration // since the start
		end   bool
		touch int // touches asked for
	}{
		{"one", []time.Duration{time.Second}, false, 0},
		{"at the floor", []time.Duration{0, time.Minute, 2 * time.Minute}, false, 0},
		{"within the slack", []time.Duration{0, 54 * time.Second}, false, 0},
		{"too fast", []time.Duration{0, 53 * time.Second}, true, 0},
		{"refresh", []time.Duration{0, 9 * time.Hour, 10 * time.Hour, 18 * time.Hour}, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := startState(t, wire.Hello{}, st0)
			var end *closeReason
			touches := 0
			for _, d := range tc.pings {
				do := st.ping(st0.Add(d))
				if do.end != nil {
					end = do.end
					break
				}
				if !do.touch.IsZero() {
					touches++
				}
			}
			if (end != nil) != tc.end || end != nil && end.code != websocket.ClosePolicyViolation {
				t.Fatalf("end %+v, want %v", end, tc.end)
			}
			if touches != tc.touch {
				t.Fatalf("%d touches, want %d", touches, tc.touch)
			}
		})
	}
}

// TestSessionRequests: every request is answered through the runner; the
// answers waiting are bounded; a second hello ends the session.
func TestSessionRequests(t *testing.T) {
	st := startState(t, wire.Hello{}, st0)
	for _, f := range []any{
		&wire.Register{Type: wire.TypeRegister, ReqID: 1, App: "a", Channel: "c"},
		&wire.Unregister{Type: wire.TypeUnregister, ReqID: 2, ChannelID: "x"},
		&wire.Bind{Type: wire.TypeBind, ReqID: 3, ChannelID: "x"},
		&wire.State{Type: wire.TypeState, ReqID: 4, Power: "low"},
	} {
		if do := st.frame(f, st0); do.request != f || do.end != nil {
			t.Fatalf("%T: %+v", f, do)
		}
	}
	if st.power != "low" {
		t.Fatalf("power %q after a state frame", st.power)
	}
	if do := st.frame(&wire.Hello{Type: wire.TypeHello, Version: wire.Version}, st0); do.end == nil || do.end.code != wire.CloseProtocol {
		t.Fatalf("second hello: %+v", do)
	}
	for i := range maxReplies {
		if end := st.reply(wire.Result{ReqID: uint64(i)}); end != nil {
			t.Fatalf("reply %d: %+v", i, end)
		}
	}
	if end := st.reply(wire.Result{}); end == nil || end.code != wire.CloseProtocol {
		t.Fatalf("reply past the bound: %+v", end)
	}
	frames, _, err := st.out(st0, false, nil, false, newFakeQueue(0))
	if err != nil || len(frames) != maxReplies {
		t.Fatalf("%d frames written, err %v", len(frames), err)
	}
}

func TestSupersedes(t *testing.T) {
	for _, tc := range []struct {
		mine, theirs uint64
		end          bool
	}{
		{0, 0, false},
		{5, 5, false}, // its own Hold told back
		{5, 4, false}, // an older one on another node
		{5, 6, true},
		{0, 1, true}, // this node's Hold failed
	} {
		r := supersedes(tc.mine, tc.theirs)
		if (r != nil) != tc.end || r != nil && r.code != wire.CloseReplaced {
			t.Errorf("mine %d theirs %d: %+v, want end %v", tc.mine, tc.theirs, r, tc.end)
		}
	}
}

// BenchmarkSessionDeliver measures the session core's share of one
// notification: told of its commit, written in a frame, acknowledged.
func BenchmarkSessionDeliver(b *testing.B) {
	h := wire.Hello{Type: wire.TypeHello, Version: wire.Version}
	st, _ := newSessionState(&h, store.Device{ID: "dev", Power: "normal", LastSeen: st0}, testLimits, st0)
	q := newFakeQueue(0)
	if _, _, err := st.out(st0, true, nil, false, q); err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"sync":true}`)
	b.ReportAllocs()
	for b.Loop() {
		n := q.add(store.Queued{DueAt: st0, ChannelID: "c7Hq2vXbT1mK9pLz4sWd8A", Kind: "raw", Body: body, AcceptedAt: st0})
		q.qs = q.qs[:0]
		frames, _, err := st.out(st0, true, []store.Queued{n}, false, q)
		if err != nil || len(frames) != 1 {
			b.Fatalf("%d frames, err %v", len(frames), err)
		}
		if do := st.frame(&wire.Ack{Type: wire.TypeAck, Seq: n.Seq}, st0); do.end != nil || do.ack != n.Seq {
			b.Fatalf("ack: %+v", do)
		}
		if _, _, err := st.out(st0, true, nil, false, q); err != nil {
			b.Fatal(err)
		}
	}
}
