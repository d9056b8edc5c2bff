package server_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

// clientFrame is a masked websocket text frame as a client sends it, with
// a zero mask key so the payload goes as it is.
func clientFrame(payload string) []byte {
	b := []byte{0x81}
	if n := len(payload); n < 126 {
		b = append(b, 0x80|byte(n))
	} else {
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	}
	b = append(b, 0, 0, 0, 0)
	return append(b, payload...)
}

// TestSequenceAttack is an anonymous device reporting sequence numbers it
// was never given: it enrols, then reconnects with last_seq and an ack of
// the same number in one TCP write. Each is a protocol error for its own
// connection (4002); afterwards the service's writes still go through: a
// legitimate sender gets 200 Received and its device gets the
// notification, a new device enrols, and the attacker's row keeps integer
// sequence numbers.
func TestSequenceAttack(t *testing.T) {
	e := startEnv(t, server.ServeConfig{})
	base := e.svc.URL()
	victim := mustDial(t, base)
	vch := victim.open("victim", "")
	victim.bind(vch.ChannelID, true, false)
	checkServed(t, victim, vch.URI)

	tests := []struct {
		name    string
		lastSeq uint64
		ack     bool // an ack of lastSeq in the same TCP write
	}{
		{"last_seq and ack of 2^64-1", math.MaxUint64, true},
		{"last_seq and ack of 2^63-1", math.MaxInt64, true},
		{"last_seq and ack of 2^63", 1 << 63, true},
		{"last_seq 2^64-1 alone", math.MaxUint64, false},
		{"last_seq 2^63-2 alone", store.MaxSeq, false},
		{"last_seq one above what was given", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attacker := mustDial(t, base)
			attacker.hangUp(e.svc)
			ws, _, err := websocket.DefaultDialer.Dial(wsURL(base), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			ws.SetReadDeadline(time.Now().Add(frameWait))
			_, data, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			challenge, err := wire.DecodeService(data)
			if err != nil {
				t.Fatal(err)
			}
			hello, err := wire.Encode(helloFor(t, challenge, attacker.id, attacker.secret, tt.lastSeq))
			if err != nil {
				t.Fatal(err)
			}
			frames := clientFrame(string(hello))
			if tt.ack {
				frames = append(frames, clientFrame(fmt.Sprintf(`{"type":"ack","seq":%d}`, tt.lastSeq))...)
			}
			if _, err := ws.NetConn().Write(frames); err != nil {
				t.Fatal(err)
			}
			if code := closeCode(t, ws); code != wire.CloseProtocol {
				t.Fatalf("close code %d, want %d", code, wire.CloseProtocol)
			}

			// The legitimate sender and device are served, several times
			// over, so every lazy ack the attack could have left has been
			// through a transaction.
			const sent = 5
			for range sent {
				checkServed(t, victim, vch.URI)
			}
			t.Logf("%s: closed %d; after the attack: sent %d, answered 200 Received %d, delivered %d; a new device enrolled", tt.name, wire.CloseProtocol, sent, sent, sent)
			// New devices still enrol (the committer answers them).
			newcomer := mustDial(t, base)
			newcomer.open("app", "")
			// The attacker's own row is intact and its device still works.
			d, err := e.svc.Store.Device(context.Background(), attacker.id)
			if err != nil || d.NextSeq != 1 || d.AckedSeq != 0 {
				t.Fatalf("attacker's row: next_seq %d acked_seq %d err %v; want 1, 0", d.NextSeq, d.AckedSeq, err)
			}
			again, err := dial(t, base, attacker.id, attacker.secret)
			if err != nil {
				t.Fatalf("the attacker's device reconnecting honestly: %v", err)
			}
			ach := again.open("own", "")
			mustPost(t, nil, ach.URI)
			if n := again.nextNotification(); n.Seq != 1 || n.ChannelID != ach.ChannelID {
				t.Fatalf("the attacker's device got %+v", n)
			}
		})
	}
}

// TestAckAboveSent: an ack above what the session wrote is refused for that
// connection alone, and the device's queue is not touched.
func TestAckAboveSent(t *testing.T) {
	e := startEnv(t, server.ServeConfig{})
	base := e.svc.URL()
	victim := mustDial(t, base)
	vch := victim.open("victim", "")
	victim.bind(vch.ChannelID, true, false)
	d := mustDial(t, base)
	ch := d.open("app", "")
	mustPost(t, nil, ch.URI)
	if n := d.nextNotification(); n.Seq != 1 {
		t.Fatalf("got %+v", n)
	}
	acks := []uint64{2, math.MaxInt64, math.MaxUint64}
	for _, seq := range acks {
		d.ws.Close()
		var err error
		d, err = dial(t, base, d.id, d.secret)
		if err != nil {
			t.Fatal(err)
		}
		if n := d.nextNotification(); n.Seq != 1 { // resent: never acked
			t.Fatalf("resend: %+v", n)
		}
		d.send(wire.Ack{Type: wire.TypeAck, Seq: seq})
		if code := closeCode(t, d.ws); code != wire.CloseProtocol {
			t.Fatalf("ack %d: close code %d, want %d", seq, code, wire.CloseProtocol)
		}
		checkServed(t, victim, vch.URI)
	}
	t.Logf("acks above what was sent: %d connections, each closed %d, notification 1 resent on each; legitimate sender and device: sent %d, 200 Received %d, delivered %d",
		len(acks), wire.CloseProtocol, len(acks), len(acks), len(acks))
}
