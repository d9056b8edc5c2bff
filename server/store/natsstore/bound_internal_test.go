package natsstore

import "testing"

// The bound never counts fewer messages than the subject can hold, whatever
// order the follower, the reads and the publishes come in.
func TestDepthBoundNeverUnderCounts(t *testing.T) {
	const depth = 100 // margin 25: room for one more while the bound is at most 74
	upper := func(bs *bounds) int {
		t.Helper()
		b := bs.m["dev"]
		if b == nil || !b.valid {
			t.Fatal("no bound")
		}
		return b.upper()
	}
	for _, c := range []struct {
		name string
		run  func(t *testing.T, bs *bounds) (want int)
	}{
		{"no bound before a read", func(t *testing.T, bs *bounds) int {
			bs.seen("dev", 5)
			if bs.reserve("dev", depth) {
				t.Fatal("room reserved for a device never read")
			}
			read := bs.reading("dev")
			read(true, 5, 1)
			return 1
		}},
		{"commits seen during the first read", func(t *testing.T, bs *bounds) int {
			read := bs.reading("dev")
			bs.seen("dev", 7) // after the read's answer: it saw up to 5
			read(true, 5, 3)
			bs.seen("dev", 9)
			return 5
		}},
		{"a read older than what was seen since", func(t *testing.T, bs *bounds) int {
			bs.reading("dev")(true, 5, 3)
			read := bs.reading("dev")
			bs.seen("dev", 8)
			read(true, 6, 3) // the read saw 6, which the follower had not reached
			return 4
		}},
		{"own publishes before the follower sees them", func(t *testing.T, bs *bounds) int {
			bs.reading("dev")(true, 5, 2)
			if !bs.reserve("dev", depth) || !bs.reserve("dev", depth) {
				t.Fatal("no room far below the depth")
			}
			if got := upper(bs); got != 4 {
				t.Fatalf("two in flight over 2: %d", got)
			}
			bs.done("dev", 12)
			bs.done("dev", 0)  // failed
			bs.seen("dev", 10) // another node's, before the own one
			if got := upper(bs); got != 4 {
				t.Fatalf("after another's commit: %d, want 4", got)
			}
			bs.seen("dev", 12)
			return 4
		}},
		{"a read that spans a reconnection is not applied", func(t *testing.T, bs *bounds) int {
			bs.reading("dev")(true, 5, 2)
			read := bs.reading("dev")
			bs.missed()
			read(true, 6, 1)
			if bs.reserve("dev", depth) {
				t.Fatal("room reserved on a bound read before a reconnection")
			}
			bs.reading("dev")(true, 9, 4)
			return 4
		}},
		{"no room near the depth", func(t *testing.T, bs *bounds) int {
			bs.reading("dev")(true, 5, 74)
			if !bs.reserve("dev", depth) {
				t.Fatal("no room at 74 of 100")
			}
			if bs.reserve("dev", depth) {
				t.Fatal("room at 75 of 100, within the margin")
			}
			bs.done("dev", 6)
			return 75
		}},
		{"a count of every queue", func(t *testing.T, bs *bounds) int {
			done := bs.countingAll()
			bs.seen("other", 12) // committed after the count's last number
			bs.seen("dev", 9)    // before it: in the count
			done(map[string]uint64{"dev": 3}, 10, true)
			if b := bs.m["other"]; b == nil || b.upper() != 1 {
				t.Fatalf("a subject the count did not name, then seen once: %+v", b)
			}
			if !bs.reserve("new", depth) {
				t.Fatal("no room on a subject the count did not name")
			}
			bs.done("new", 0)
			bs.missed()
			if bs.reserve("new", depth) {
				t.Fatal("room on a subject unknown since a reconnection")
			}
			bs.reading("dev")(true, 9, 3)
			return 3
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			bs := newBounds()
			want := c.run(t, bs)
			if got := upper(bs); got != want {
				t.Fatalf("bound %d, want %d", got, want)
			}
		})
	}
}

// A deleted device's bound goes at once, or, if a read or a publish is
// using it, when the last of them ends.
func TestBoundsForget(t *testing.T) {
	for _, tc := range []struct {
		name string
		use  func(bs *bounds) (end func())
	}{
		{"idle", func(bs *bounds) func() { return nil }},
		{"being read", func(bs *bounds) func() {
			done := bs.reading("q.dev")
			return func() { done(true, 9, 2) }
		}},
		{"publish in flight", func(bs *bounds) func() {
			if !bs.reserve("q.dev", 32) {
				t.Fatal("no room reserved")
			}
			return func() { bs.done("q.dev", 9) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := newBounds()
			bs.known = true
			bs.seen("q.dev", 7)
			end := tc.use(bs)
			bs.forget("q.dev")
			if _, kept := bs.m["q.dev"]; kept != (end != nil) {
				t.Fatalf("kept %v while in use %v", kept, end != nil)
			}
			if end != nil {
				end()
				if _, kept := bs.m["q.dev"]; kept {
					t.Fatal("kept after its last use ended")
				}
			}
		})
	}
}
