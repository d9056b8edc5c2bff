package natsstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/server/store"
)

// A requeue that finds its device's queue full, the place above the
// depth taken by a replacement that has yet to delete what it replaced,
// waits for that place rather than take the original out first: a crash
// meanwhile would lose it. If the place never frees, it still moves the
// notification, taking the original out first, after requeueWaits waits.
func TestRequeueWaitsForRoom(t *testing.T) {
	const depth = 4
	for _, c := range []struct {
		name      string
		frees     bool // the replacement's delete comes during the first wait
		wantWaits int
	}{
		{"the place frees", true, 1},
		{"the place stays taken", false, requeueWaits},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, Options{URLs: natstest.Run(t).URL(), Prefix: "requeue", QueueDepth: depth})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.CreateDevice(ctx, store.Device{ID: "dev"}); err != nil {
				t.Fatal(err)
			}
			var queued []store.Queued
			for i := range depth {
				q, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", Kind: "raw", Body: fmt.Appendf(nil, "m%d", i)}, store.EnqueueOptions{})
				if err != nil {
					t.Fatal(err)
				}
				queued = append(queued, q)
			}
			// What a replacement publishes into the place above the
			// depth, before it deletes what it replaced.
			spare, err := s.publish(ctx, store.Queued{DeviceID: "dev", Kind: "raw", Body: []byte("replacement")})
			if err != nil {
				t.Fatal(err)
			}
			waits, originalThere := 0, true
			s.pause = func(ctx context.Context, try int) error {
				waits++
				if _, err := s.queue.GetMsg(ctx, queued[0].Seq); err != nil {
					originalThere = false
				}
				if c.frees && try == 1 {
					return s.queue.DeleteMsg(ctx, spare)
				}
				return nil
			}
			moved, err := s.Requeue(ctx, "dev", queued[0].Seq)
			if err != nil {
				t.Fatal(err)
			}
			if waits != c.wantWaits || !originalThere {
				t.Fatalf("waited %d times (want %d); the original queued through every wait: %v", waits, c.wantWaits, originalThere)
			}
			qs, err := s.Pending(ctx, "dev", 0)
			if err != nil {
				t.Fatal(err)
			}
			var bodies []string
			for _, q := range qs {
				bodies = append(bodies, string(q.Body))
			}
			want := []string{"m1", "m2", "m3", "m0"}
			if !c.frees {
				want = []string{"m1", "m2", "m3", "replacement", "m0"}
			}
			if fmt.Sprint(bodies) != fmt.Sprint(want) || qs[len(qs)-1].Seq != moved.Seq {
				t.Fatalf("queued %q, the moved one numbered %d; want %q, it last", bodies, moved.Seq, want)
			}
		})
	}
}
