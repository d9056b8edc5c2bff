package store_test

import (
	"context"
	"maps"
	"math"
	"testing"
	"time"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/server/store"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// TestLazyKeepsHighestAndLatest: many acks and touches of one device cost
// one entry each, the highest ack and the latest time; an older one never
// moves them back, and one above MaxSeq is dropped.
func TestLazyKeepsHighestAndLatest(t *testing.T) {
	tests := []struct {
		name        string
		do          func(l *store.Lazy)
		wantAcks    map[string]uint64
		wantTouches map[string]int64
	}{
		{"nothing", func(*store.Lazy) {}, nil, nil},
		{"highest ack wins, in any order", func(l *store.Lazy) {
			for _, seq := range []uint64{3, 9, 5, 1} {
				l.Ack("a", seq)
			}
			l.Ack("b", 2)
		}, map[string]uint64{"a": 9, "b": 2}, nil},
		{"acks above MaxSeq dropped", func(l *store.Lazy) {
			l.Ack("a", 4)
			for _, seq := range []uint64{store.MaxSeq + 1, 1 << 63, math.MaxUint64} {
				l.Ack("a", seq)
				l.Ack("x", seq)
			}
		}, map[string]uint64{"a": 4}, nil},
		{"MaxSeq itself kept", func(l *store.Lazy) { l.Ack("a", store.MaxSeq) }, map[string]uint64{"a": store.MaxSeq}, nil},
		{"latest touch wins, never back", func(l *store.Lazy) {
			l.Touch("a", t0.Add(time.Minute))
			l.Touch("a", t0)
			l.Touch("b", t0)
		}, nil, map[string]int64{"a": t0.Add(time.Minute).UnixMilli(), "b": t0.UnixMilli()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := store.NewLazy()
			tt.do(l)
			acks, touches := l.Take()
			if !maps.Equal(acks, tt.wantAcks) || !maps.Equal(touches, tt.wantTouches) {
				t.Fatalf("took %v %v, want %v %v", acks, touches, tt.wantAcks, tt.wantTouches)
			}
			if a, tc := l.Take(); a != nil || tc != nil || l.Len() != 0 {
				t.Fatalf("a second Take found %v %v", a, tc)
			}
		})
	}
}

// TestLazyFlood: a flood of acks from one device holds one entry.
func TestLazyFlood(t *testing.T) {
	l := store.NewLazy()
	for seq := range uint64(100_000) {
		l.Ack("flooder", seq)
		l.Touch("flooder", t0.Add(time.Duration(seq)*time.Millisecond))
	}
	if n := l.Len(); n != 1 {
		t.Fatalf("%d entries after a flood from one device, want 1", n)
	}
}

// TestLazyKickedOnce: the first entry since a Take kicks, later ones do
// not, and the next one after a Take kicks again.
func TestLazyKickedOnce(t *testing.T) {
	l := store.NewLazy()
	kicks := func() int {
		n := 0
		for {
			select {
			case <-l.Kicked():
				n++
			default:
				return n
			}
		}
	}
	l.Ack("a", 1)
	l.Ack("a", 2)
	l.Touch("b", t0)
	if n := kicks(); n != 1 {
		t.Fatalf("%d kicks for three entries, want 1", n)
	}
	l.Take()
	l.Touch("b", t0)
	if n := kicks(); n != 1 {
		t.Fatalf("%d kicks after a Take, want 1", n)
	}
}

// TestLazyRun: Run flushes AckDelay after the first entry, on its clock,
// everything that arrived meanwhile in one flush; and what arrives before
// ctx ends is flushed as it stops.
func TestLazyRun(t *testing.T) {
	clk := clock.NewFake(t0)
	l := store.NewLazy()
	type flushed struct {
		acks    map[string]uint64
		touches map[string]int64
	}
	got := make(chan flushed, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	timerSet := clk.Changed()
	go func() {
		done <- l.Run(ctx, clk, 100*time.Millisecond, func(a map[string]uint64, tc map[string]int64) { got <- flushed{a, tc} })
	}()

	l.Ack("a", 1)
	<-timerSet // Run is waiting out the delay
	l.Ack("a", 7)
	l.Touch("b", t0)
	select {
	case f := <-got:
		t.Fatalf("flushed %v before the delay", f)
	default:
	}
	clk.Advance(100 * time.Millisecond)
	f := <-got
	if !maps.Equal(f.acks, map[string]uint64{"a": 7}) || !maps.Equal(f.touches, map[string]int64{"b": t0.UnixMilli()}) {
		t.Fatalf("first flush %v %v", f.acks, f.touches)
	}

	// Given before the end, flushed by it without waiting out a delay.
	timerSet = clk.Changed()
	l.Ack("c", 3)
	<-timerSet
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	f = <-got
	if !maps.Equal(f.acks, map[string]uint64{"c": 3}) {
		t.Fatalf("final flush %v", f.acks)
	}
}
