package server_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// heldConn passes writes through until hold, then keeps them until
// release sends them all in one write, so that the service's first read
// takes several frames at once.
type heldConn struct {
	net.Conn
	mu      sync.Mutex
	holding bool
	held    bytes.Buffer
}

func (c *heldConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holding {
		return c.held.Write(p)
	}
	return c.Conn.Write(p)
}

func (c *heldConn) hold() { c.mu.Lock(); c.holding = true; c.mu.Unlock() }

func (c *heldConn) release(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = false
	if _, err := c.Conn.Write(c.held.Bytes()); err != nil {
		t.Fatal(err)
	}
	c.held.Reset()
}

// heldDevice starts a service and a device enrolled with it over a
// connection whose writes the test can hold (heldConn), so that several
// frames reach the service in one segment. The pong handler is the
// test's to set: the device's reads (d.next) run it.
func heldDevice(t *testing.T) (*testService, *heldConn, *websocket.Conn, *testDevice) {
	t.Helper()
	ts := startService(t, server.Config{})
	var hc *heldConn
	dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		hc = &heldConn{Conn: c}
		return hc, nil
	}}
	conn, _, err := dialer.Dial("ws"+strings.TrimPrefix(ts.http.URL, "http")+server.DevicePath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	d := &testDevice{t: t, ts: ts, conn: conn}
	d.send(helloFor(t, d.next(), "", "", 0))
	if _, ok := d.next().(*wire.Welcome); !ok {
		t.Fatal("first frame is not welcome")
	}
	return ts, hc, conn, d
}

// TestFramesInOneRead: frames that reach the service in one segment are
// all answered. The read loop waits for the socket only when the
// websocket reader holds nothing: waiting while it held the second frame
// would leave that frame unanswered until the device sent a third.
func TestFramesInOneRead(t *testing.T) {
	_, hc, _, d := heldDevice(t)
	for round := range 3 {
		hc.hold()
		for i := range 3 {
			d.send(wire.Register{Type: wire.TypeRegister, ReqID: uint64(10*round + i + 1), App: "app" + string(rune('a'+3*round+i)), Channel: "default"})
		}
		hc.release(t)
		for i := range 3 {
			r, ok := d.next().(*wire.Registered)
			if !ok || r.Code != "" || r.ReqID != uint64(10*round+i+1) {
				t.Fatalf("round %d, answer %d: %+v", round, i, r)
			}
		}
	}
}

// TestPingThenFrameInOneRead: a ping the read loop takes off the socket
// itself is answered, and the frame behind it in the same segment is left
// for the websocket reader and answered too.
func TestPingThenFrameInOneRead(t *testing.T) {
	ts, hc, conn, d := heldDevice(t)
	pongs := make(chan string, 8)
	conn.SetPongHandler(func(s string) error { pongs <- s; return nil })
	for round := range 3 {
		// Heartbeats at least the service's minimum apart (fake clock).
		ts.clk.Advance(5 * time.Minute)
		hc.hold()
		beat := "beat" + string(rune('0'+round))
		if err := conn.WriteControl(websocket.PingMessage, []byte(beat), time.Now().Add(frameWait)); err != nil {
			t.Fatal(err)
		}
		d.send(wire.Register{Type: wire.TypeRegister, ReqID: uint64(round + 1), App: "app" + string(rune('a'+round)), Channel: "default"})
		hc.release(t)
		registeredAfterPong(t, d, pongs, uint64(round+1), beat, fmt.Sprintf("round %d", round))
	}
	// A ping alone, with nothing behind it, is answered too.
	ts.clk.Advance(5 * time.Minute)
	if err := conn.WriteControl(websocket.PingMessage, []byte("alone"), time.Now().Add(frameWait)); err != nil {
		t.Fatal(err)
	}
	d.send(wire.Register{Type: wire.TypeRegister, ReqID: 9, App: "appz", Channel: "default"})
	if r, ok := d.next().(*wire.Registered); !ok || r.ReqID != 9 {
		t.Fatalf("after a lone ping: %+v", r)
	}
	if got := <-pongs; got != "alone" {
		t.Fatalf("pong %q, want alone", got)
	}
}

// TestPingSplitAcrossSegments: a ping whose bytes reach the service in two
// segments is answered, whichever part the read loop's wait finds on the
// socket when it wakes: a partial ping is no ping to take there and is
// left for the websocket reader, which reads it whole; a whole one is
// taken by the wait. The frame after it is answered too.
func TestPingSplitAcrossSegments(t *testing.T) {
	ts, hc, conn, d := heldDevice(t)
	pongs := make(chan string, 8)
	conn.SetPongHandler(func(s string) error { pongs <- s; return nil })
	for round, cut := range []int{1, 2, 6, 9} {
		ts.clk.Advance(5 * time.Minute)
		beat := "split" + string(rune('0'+round))
		frame := maskedPing(beat)
		// Written under the websocket writer's feet: nothing else writes
		// on the connection between two sends.
		if _, err := hc.Conn.Write(frame[:cut]); err != nil {
			t.Fatal(err)
		}
		if _, err := hc.Conn.Write(frame[cut:]); err != nil {
			t.Fatal(err)
		}
		d.send(wire.Register{Type: wire.TypeRegister, ReqID: uint64(round + 1), App: "app" + string(rune('a'+round)), Channel: "default"})
		registeredAfterPong(t, d, pongs, uint64(round+1), beat, fmt.Sprintf("cut at %d", cut))
	}
}

// maskedPing is a client's ping frame carrying payload, as RFC 6455 §5.2
// lays it out: FIN and opcode 9, the mask bit and length, the mask, the
// masked payload.
// registeredAfterPong reads the answer to register reqID and checks that
// the pong of beat, the ping sent before it, came first.
func registeredAfterPong(t *testing.T, d *testDevice, pongs <-chan string, reqID uint64, beat, what string) {
	t.Helper()
	if r, ok := d.next().(*wire.Registered); !ok || r.Code != "" || r.ReqID != reqID {
		t.Fatalf("%s: %+v", what, r)
	}
	select {
	case got := <-pongs:
		if got != beat {
			t.Fatalf("%s: pong %q, want %q", what, got, beat)
		}
	default:
		t.Fatalf("%s: no pong before the answer to the frame after the ping", what)
	}
}

func maskedPing(payload string) []byte {
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b := []byte{0x80 | websocket.PingMessage, 0x80 | byte(len(payload))}
	b = append(b, mask[:]...)
	for i := range len(payload) {
		b = append(b, payload[i]^mask[i%4])
	}
	return b
}
