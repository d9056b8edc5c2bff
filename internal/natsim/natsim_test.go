package natsim

import (
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/heraldpush/herald/clock"
)

// echo serves a loopback echo server until the test ends.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, msg string) (string, error) {
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, len(msg))
	_, err := io.ReadFull(c, buf)
	return string(buf), err
}

func TestIdleFlowIsBlackHoled(t *testing.T) {
	tests := []struct {
		name  string
		idle  time.Duration // how long the flow sits idle
		alive bool
	}{
		{"just under T", 30*time.Minute - time.Second, true},
		{"at T", 30 * time.Minute, false},
		{"well past T", 3 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			nat, err := New(echo(t), 30*time.Minute, fc)
			if err != nil {
				t.Fatal(err)
			}
			defer nat.Close()
			c, err := net.Dial("tcp", nat.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got, err := roundTrip(c, "hello"); err != nil || got != "hello" {
				t.Fatalf("first round trip: %q, %v", got, err)
			}
			fc.Advance(tt.idle)
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatalf("write on a dropped flow must succeed (no RST): %v", err)
			}
			// Wait for the ping itself: the echo of "hello" may still be
			// telling of its own crossing when the write goes out.
			for {
				seen := nat.Seen()
				if st := nat.Stats(); st.UpPackets+st.Discarded >= 2 {
					break
				}
				<-seen
			}
			if st := nat.Stats(); (st.Dropped == 0) != tt.alive {
				t.Fatalf("alive=%v but stats %+v", tt.alive, st)
			}
			if tt.alive {
				buf := make([]byte, 4)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
					t.Fatalf("echo on a live flow: %q, %v", buf, err)
				}
				return
			}
			// Nothing comes back, not even a FIN: the read times out.
			c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if n, err := c.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("read on a black-holed flow: %d bytes, %v; want a timeout", n, err)
			}
			if st := nat.Stats(); st.Discarded != 1 {
				t.Fatalf("discarded %d reads, want 1", st.Discarded)
			}
		})
	}
}

func TestTrafficKeepsFlowAlive(t *testing.T) {
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	nat, err := New(echo(t), 5*time.Minute, fc)
	if err != nil {
		t.Fatal(err)
	}
	defer nat.Close()
	c, err := net.Dial("tcp", nat.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 12 { // an hour of traffic every 4m59s
		if got, err := roundTrip(c, "x"); err != nil || got != "x" {
			t.Fatalf("round trip %d: %q, %v", i, got, err)
		}
		fc.Advance(5*time.Minute - time.Second)
	}
	if st := nat.Stats(); st.Dropped != 0 || st.Up != 12 || st.Down != 12 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloseEndsBlackHoledFlows(t *testing.T) {
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	nat, err := New(echo(t), time.Minute, fc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", nat.Addr())
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(c, "a")
	nat.DropAll()
	c.Close() // the client's FIN is swallowed; the server side stays open
	done := make(chan struct{})
	go func() { nat.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
}

// TestLossIsSeededAndSparesBursts: SetLoss loses only a packet that ends
// an idle spell, black-holes its flow, and two NATs with one seed lose the
// same packets.
func TestLossIsSeededAndSparesBursts(t *testing.T) {
	run := func(seed uint64) []bool {
		fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		nat, err := New(echo(t), 0, fc)
		if err != nil {
			t.Fatal(err)
		}
		defer nat.Close()
		nat.SetLoss(0.5, seed)
		var lost []bool
		for range 16 {
			c, err := net.Dial("tcp", nat.Addr())
			if err != nil {
				t.Fatal(err)
			}
			// No idle time since the flow opened: never lost.
			if got, err := roundTrip(c, "hello"); err != nil || got != "hello" {
				t.Fatalf("a burst was lost: %q, %v", got, err)
			}
			fc.Advance(time.Minute)
			before := nat.Stats()
			c.Write([]byte("ping"))
			for { // until the ping has crossed or vanished
				seen := nat.Seen()
				if st := nat.Stats(); st.UpPackets+st.Discarded > before.UpPackets+before.Discarded {
					break
				}
				<-seen
			}
			gone := nat.Stats().Lost > before.Lost
			wait := 5 * time.Second
			if gone {
				wait = 20 * time.Millisecond
			}
			c.SetReadDeadline(time.Now().Add(wait))
			buf := make([]byte, 4)
			if _, err := io.ReadFull(c, buf); (err == nil) == gone {
				t.Fatalf("echo %q, %v; lost %v", buf, err, gone)
			}
			lost = append(lost, gone)
			c.Close()
		}
		return lost
	}
	a, b := run(7), run(7)
	if !slices.Equal(a, b) {
		t.Fatalf("one seed, two runs: %v and %v", a, b)
	}
	n := 0
	for _, l := range a {
		if l {
			n++
		}
	}
	if n == 0 || n == len(a) {
		t.Fatalf("lost %d of %d at p=0.5", n, len(a))
	}
}
