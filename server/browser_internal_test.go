package server

import (
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

// A browser acknowledges message by message, in any order; the queue is
// acknowledged only up to where every message written has been, and
// versions never written, repeated or not numbers move nothing.
func TestBrowserLinkAcks(t *testing.T) {
	var b browserLink
	for _, seq := range []uint64{4, 5, 7, 9} {
		b.wrote(seq)
	}
	for _, tc := range []struct {
		version string
		upTo    uint64
	}{
		{"5", 0},  // 4 is not acknowledged yet
		{"6", 0},  // never written
		{"x", 0},  // not a number
		{"-4", 0}, // not a number either
		{"4", 5},  // 4 and 5
		{"4", 0},  // repeated
		{"9", 0},  // 7 is not acknowledged yet
		{"7", 9},  // 7 and 9
		{"9", 0},  // acknowledged in the store already
	} {
		if got := b.acked(tc.version); got != tc.upTo {
			t.Fatalf("ack of %q: up to %d, want %d", tc.version, got, tc.upTo)
		}
	}
	if len(b.written) != 0 || len(b.done) != 0 {
		t.Fatalf("left %v written, %v done", b.written, b.done)
	}
}

func TestValidChannelUUID(t *testing.T) {
	for s, want := range map[string]bool{
		"c3163698-e5d9-4875-8cdd-1e73b67f14b8":  true,
		"C3163698-E5D9-4875-8CDD-1E73B67F14B8":  true,
		"{c3163698-e5d9-4875-8cdd-1e73b67f14b}": false,
		"c3163698e5d948758cdd1e73b67f14b8":      false,
		"c3163698-e5d9-4875-8cdd-1e73b67f14bg":  false,
		"c3163698-e5d9-4875-8cdd_1e73b67f14b8":  false,
		"":                                      false,
	} {
		if validChannelUUID(s) != want {
			t.Errorf("validChannelUUID(%q) = %v", s, !want)
		}
	}
}

// A browser's requests (register, unregister, its {} keepalive) are served
// by the session like a device's, and, having no websocket pings, keep its
// last_seen fresh; its acks reach the state as a device's cumulative ack.
func TestBrowserRequestsStepTheState(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	lim := sessionLimits{minHeartbeat: time.Minute, maxIdle: time.Hour, touchEvery: 10 * time.Minute}
	st, _ := newSessionState(&wire.Hello{}, store.Device{ID: "b", LastSeen: t0}, lim, t0)
	var link browserLink
	keepalive, err := link.decode([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if do := st.frame(keepalive, t0.Add(time.Minute)); do.request == nil || !do.touch.IsZero() || do.end != nil {
		t.Fatalf("keepalive a minute in: %+v", do)
	}
	if do := st.frame(keepalive, t0.Add(11*time.Minute)); do.request == nil || !do.touch.Equal(t0.Add(11*time.Minute)) {
		t.Fatalf("keepalive past the refresh period: %+v", do)
	}
	st.sent = 3 // the writer wrote 1..3
	for seq := uint64(1); seq <= 3; seq++ {
		link.wrote(seq)
	}
	ack, err := link.decode([]byte(`{"messageType":"ack","updates":[{"channelID":"x","version":"2","code":100},{"channelID":"x","version":"1","code":102}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if do := st.frame(ack, t0.Add(12*time.Minute)); do.ack != 2 || do.end != nil {
		t.Fatalf("acks of 2 and 1: %+v", do)
	}
}
