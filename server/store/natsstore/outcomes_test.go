package natsstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/natsstore"
)

// One channel makes each node remember at most MaxOutcomes outcomes a day
// (each node counts its own, so two nodes remember at most twice as
// many); another channel keeps its own room.
func TestOutcomesBoundedPerChannel(t *testing.T) {
	url := natstest.Run(t).URL()
	const bound = 6
	open := func() *natsstore.Store {
		s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: url, Prefix: "outcomes", MaxOutcomes: bound})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	nodes := []*natsstore.Store{open(), open()}
	ctx := context.Background()
	now := time.Now()
	for _, d := range []string{"dev-a", "dev-b"} {
		if err := nodes[0].CreateDevice(ctx, store.Device{ID: d, SecretHash: []byte("h"), CreatedAt: now, LastSeen: now}); err != nil {
			t.Fatal(err)
		}
	}
	enqueue := func(dev, ch, id string) uint64 {
		t.Helper()
		q, err := nodes[0].Enqueue(ctx, store.Queued{DeviceID: dev, ChannelID: ch, Kind: "raw", MessageID: id, Body: []byte("x")}, store.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return q.Seq
	}
	// Two devices' acks for the same channel id on two nodes at once.
	var tops [2]uint64
	const sent = 3 * bound // each device 1.5 bounds, past its node's bound
	for i := range sent {
		tops[i%2] = enqueue([]string{"dev-a", "dev-b"}[i%2], "flood", fmt.Sprint(i))
	}
	var wg sync.WaitGroup
	for i, dev := range []string{"dev-a", "dev-b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := nodes[i].Ack(ctx, dev, tops[i]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	remembered := 0
	for i := range sent {
		dev := []string{"dev-a", "dev-b"}[i%2]
		st, err := nodes[1].MessageStatus(ctx, dev, "flood", fmt.Sprint(i))
		switch {
		case err == nil && st.State == store.MessageDelivered:
			remembered++
		case errors.Is(err, store.ErrNotFound):
		default:
			t.Fatalf("status of %d: %+v, %v", i, st, err)
		}
	}
	if remembered != 2*bound {
		t.Fatalf("%d outcomes remembered for one channel by two nodes, want %d (the bound on each)", remembered, 2*bound)
	}
	top := enqueue("dev-a", "quiet", "q")
	if err := nodes[0].Ack(ctx, "dev-a", top); err != nil {
		t.Fatal(err)
	}
	if st, err := nodes[0].MessageStatus(ctx, "dev-a", "quiet", "q"); err != nil || st.State != store.MessageDelivered {
		t.Fatalf("another channel: %+v, %v; want delivered", st, err)
	}
}

// Once a session has read a device's queue, an acknowledgement that
// covers no named notification only purges (no read of the queue), and
// one that does still records each as delivered, whether the read found
// it or the node's follower of the stream saw it committed afterwards.
func TestAckReadsOnlyForNamed(t *testing.T) {
	srv := natstest.Run(t)
	ctx := context.Background()
	s, err := natsstore.Open(ctx, natsstore.Options{URLs: srv.URL(), Prefix: "ackread"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	now := time.Now()
	if err := s.CreateDevice(ctx, store.Device{ID: "dev", SecretHash: []byte("h"), CreatedAt: now, LastSeen: now}); err != nil {
		t.Fatal(err)
	}
	enqueue := func(id string) uint64 {
		t.Helper()
		q, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "raw", MessageID: id, Body: []byte("x")}, store.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return q.Seq
	}
	delivered := func(id string) {
		t.Helper()
		if st, err := s.MessageStatus(ctx, "dev", "ch", id); err != nil || st.State != store.MessageDelivered {
			t.Fatalf("status of %q: %+v, %v; want delivered", id, st, err)
		}
	}
	before := enqueue("before-read")
	enqueue("")
	// The store's own reads (a status, a cancel, a bounded enqueue) are
	// no session's: they note nothing, or a node would note every named
	// notification of each device a sender asked about, for ever.
	if _, err := s.MessageStatus(ctx, "dev", "ch", "before-read"); err != nil {
		t.Fatal(err)
	}
	if err := s.CancelMessage(ctx, "dev", "ch", "none"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("cancelling what is not there: %v", err)
	}
	if _, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "raw", Body: []byte("x")}, store.EnqueueOptions{MaxDepth: 10}); err != nil {
		t.Fatal(err)
	}
	if n := natsstore.Noted(s); n != 0 {
		t.Fatalf("the store's own reads left notes for %d devices", n)
	}
	if _, err := s.Pending(ctx, "dev", 0); err != nil {
		t.Fatal(err)
	}
	after := enqueue("after-read")
	if err := s.Ack(ctx, "dev", before); err != nil {
		t.Fatal(err)
	}
	delivered("before-read")
	if err := s.Ack(ctx, "dev", after); err != nil {
		t.Fatal(err)
	}
	delivered("after-read")

	reads := func() uint64 {
		t.Helper()
		n, err := natsstore.QueueReads(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	const unnamed = 5
	was := reads()
	for range unnamed {
		if err := s.Ack(ctx, "dev", enqueue("")); err != nil {
			t.Fatal(err)
		}
	}
	if n := reads() - was; n != 0 {
		t.Errorf("%d acks of unnamed notifications read the queue %d times, want none", unnamed, n)
	}
	// Released, the device's notes are gone, and an ack reads again.
	if err := s.Release(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if n := natsstore.Noted(s); n != 0 {
		t.Fatalf("notes for %d devices after the release", n)
	}
	named := enqueue("after-release")
	if err := s.Ack(ctx, "dev", named); err != nil {
		t.Fatal(err)
	}
	delivered("after-release")
}
