package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

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

// TestReadBody: a body is read whole whether its length is declared or
// not, a declared one that ends early fails as io.ReadAll's would, and a
// body past the limit comes back one byte over it (how callers tell it is
// too large), over real HTTP on loopback.
func TestReadBody(t *testing.T) {
	const limit = 100
	tests := []struct {
		name     string
		body     string
		declared int64 // Content-Length sent; -1: chunked
		want     string
		wantErr  bool
	}{
		{"declared", "hello", 5, "hello", false},
		{"declared empty", "", 0, "", false},
		{"chunked", "hello", -1, "hello", false},
		{"declared at the limit", strings.Repeat("x", limit-1), limit - 1, strings.Repeat("x", limit-1), false},
		{"declared over the limit", strings.Repeat("x", limit+20), limit + 20, strings.Repeat("x", limit), false},
		{"chunked over the limit", strings.Repeat("x", limit+20), -1, strings.Repeat("x", limit), false},
		{"declared and cut short", "hel", 5, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{guard: &guard{reads: readSlots{max: -1}}}
			type result struct {
				body []byte
				err  error
			}
			got := make(chan result, 1)
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, err := s.readBody(r, limit)
				got <- result{b, err}
			}))
			defer ts.Close()
			postRaw(t, ts.Listener.Addr().String(), tt.body, tt.declared)
			res := <-got
			if (res.err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", res.err, tt.wantErr)
			}
			if !tt.wantErr && string(res.body) != tt.want {
				t.Fatalf("body %q, want %q", res.body, tt.want)
			}
		})
	}
}

// postRaw writes a POST by hand, so that its Content-Length may say what
// its body does not, then closes its side of the connection.
func postRaw(t *testing.T, addr, body string, declared int64) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "POST / HTTP/1.1\r\nHost: x\r\n"
	if declared >= 0 {
		req += fmt.Sprintf("Content-Length: %d\r\n\r\n%s", declared, body)
	} else {
		req += fmt.Sprintf("Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
		if body == "" {
			req = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
		}
	}
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	// Half-closed: a body cut short ends here, and the handler's read
	// sees the end rather than waiting for bytes that never come.
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
}
