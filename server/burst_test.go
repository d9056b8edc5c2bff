package server_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// TestConcurrentBurstInOrder posts concurrently to a connected device and
// checks it gets every accepted notification once, with no gap in the
// sequence: requests finish in any order, but the session must never send a
// higher number before a lower one is committed.
func TestConcurrentBurstInOrder(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("app", true, true)
	const senders, each = 8, 25
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				got := post(t, uri, mpns.KindRaw, "", fmt.Sprintf("s%d-%d", s, i), []byte("x"))
				if got.Notification != "Received" {
					t.Errorf("status %d %s", got.Code, got.Notification)
				}
			}
		}()
	}
	got := d.collect(senders * each)
	wg.Wait()
	seen := map[string]bool{}
	for i, n := range got {
		if n.Seq != uint64(i+1) {
			t.Fatalf("notification %d has seq %d: %v", i, n.Seq, seqs(got))
		}
		if seen[n.MessageID] {
			t.Fatalf("%s delivered twice", n.MessageID)
		}
		seen[n.MessageID] = true
	}
	d.ack(got[len(got)-1].Seq)
	waitQueueEmpty(t, ts, d.id)
}
