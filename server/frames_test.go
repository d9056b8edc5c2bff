package server

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

// TestFrames checks that notify frames keep every notification, in order,
// and never exceed what a device reads, whatever the payload sizes.
func TestFrames(t *testing.T) {
	queue := func(n, bodySize int, after ...store.Queued) []store.Queued {
		qs := make([]store.Queued, n)
		for i := range qs {
			qs[i] = store.Queued{Seq: uint64(len(after) + i + 1), ChannelID: "channel-id-0123456789", Kind: "toast", Class: 2,
				MessageID: fmt.Sprintf("%036d", i), Body: bytes.Repeat([]byte{0xff}, bodySize),
				AcceptedAt: time.UnixMilli(1 << 62 / 1000)}
		}
		return append(after, qs...)
	}
	tests := []struct {
		name       string
		unsent     []store.Queued
		wantFrames int
	}{
		{"one small", queue(1, 20), 1},
		{"many small fill frames by count", queue(600, 20), 3},
		{"largest payloads fill frames by size", queue(40, mpns.MaxBodySize), 3},
		{"mixed", queue(300, 10, queue(5, mpns.MaxBodySize)...), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			batches := frames(tt.unsent)
			if len(batches) != tt.wantFrames {
				t.Errorf("%d frames, want %d", len(batches), tt.wantFrames)
			}
			var next uint64 = 1
			for _, b := range batches {
				if len(b) == 0 || len(b) > maxBatch {
					t.Fatalf("frame of %d notifications", len(b))
				}
				enc, err := wire.Encode(wire.Notify{Type: wire.TypeNotify, Notifications: b})
				if err != nil {
					t.Fatal(err)
				}
				if len(enc) > wire.MaxFrameSize {
					t.Fatalf("frame of %d bytes exceeds %d", len(enc), wire.MaxFrameSize)
				}
				for _, n := range b {
					if n.Seq != next {
						t.Fatalf("seq %d, want %d", n.Seq, next)
					}
					next++
				}
			}
			if int(next-1) != len(tt.unsent) {
				t.Fatalf("%d notifications framed, want %d", next-1, len(tt.unsent))
			}
		})
	}
}
