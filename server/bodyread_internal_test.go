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

// TestSourceOf: IPv4 peers are counted by address, IPv6 peers by their
// /64, so a host that owns a /64 cannot take a fresh budget per address.
func TestSourceOf(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"127.0.0.1:5000", "127.0.0.1"},
		{"192.0.2.7:1", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1", "192.0.2.7"},
		{"[::1]:80", "::1"},
		{"[2001:db8::1]:443", "2001:db8::/64"},
		{"[2001:db8::ffff:1:2:3]:443", "2001:db8::/64"},
		{"[2001:db8:0:1::1]:443", "2001:db8:0:1::/64"},
		{"[fe80::1%eth0]:443", "fe80::/64"},
		{"pipe", "pipe"},
	}
	for _, tt := range tests {
		if got := sourceOf(tt.remote); got != tt.want {
			t.Errorf("sourceOf(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}
