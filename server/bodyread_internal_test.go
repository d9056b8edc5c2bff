package server

import "testing"

// TestReadSlots: each address has its own bound, a released slot is
// reusable, a negative bound means none, and an address with nothing being
// read takes no room.
func TestReadSlots(t *testing.T) {
	rs := readSlots{max: 2}
	r1, ok1 := rs.acquire("a")
	_, ok2 := rs.acquire("a")
	_, ok3 := rs.acquire("a")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("three reads from one address with a bound of 2: %v %v %v", ok1, ok2, ok3)
	}
	if _, ok := rs.acquire("b"); !ok {
		t.Fatal("another address was refused")
	}
	r1()
	r4, ok := rs.acquire("a")
	if !ok {
		t.Fatal("a released slot was not reusable")
	}
	r4()
	r1b, _ := rs.acquire("c")
	r1b()
	if _, held := rs.n["c"]; held {
		t.Fatal("an address with nothing being read is still counted")
	}
	unbounded := readSlots{max: -1}
	for i := range 1000 {
		if _, ok := unbounded.acquire("a"); !ok {
			t.Fatalf("read %d refused with no bound", i)
		}
	}
}
