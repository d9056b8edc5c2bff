package natsstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/natsstore"
	"github.com/heraldpush/herald/server/store/storetest"
)

// TestRunAppliesLazyAcksAsItStops: an ack and a last-seen time given
// lazily, with an AckDelay far longer than the test, are applied when
// Run's context ends, so a node stopped in order loses neither; a second
// store on the same servers reads both back.
func TestRunAppliesLazyAcksAsItStops(t *testing.T) {
	ctx := context.Background()
	url := natstest.Run(t).URL()
	s, err := natsstore.Open(ctx, natsstore.Options{URLs: url, Prefix: "stop", AckDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- s.Run(runCtx) }()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if err := s.CreateDevice(ctx, store.Device{ID: "dev", SecretHash: []byte("h"), CreatedAt: t0, LastSeen: t0}); err != nil {
		t.Fatal(err)
	}
	q, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "raw", Class: 3, Body: []byte("x"), AcceptedAt: t0, DueAt: t0}, store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.AckLater("dev", q.Seq)
	s.TouchLater("dev", t0.Add(time.Hour))
	stop()
	if err := <-ran; err != nil {
		t.Fatalf("Run: %v", err)
	}

	other, err := natsstore.Open(ctx, natsstore.Options{URLs: url, Prefix: "stop"})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Start(t, other)
	if p, err := other.Pending(ctx, "dev", 0); err != nil || len(p) != 0 {
		t.Errorf("pending %+v %v after the stop, want the lazy ack applied", p, err)
	}
	d, err := other.Device(ctx, "dev")
	if err != nil || !d.LastSeen.Equal(t0.Add(time.Hour)) {
		t.Errorf("device %+v %v, want last seen %v", d, err, t0.Add(time.Hour))
	}
}

// TestRunAppliesManyAcksAtOnce: lazy acks of many devices waiting at once
// are all applied, however many purges the flush has in flight.
func TestRunAppliesManyAcksAtOnce(t *testing.T) {
	ctx := context.Background()
	s, err := natsstore.Open(ctx, natsstore.Options{URLs: natstest.Run(t).URL(), Prefix: "many", AckDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	go s.Run(runCtx)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const devices = 200
	for i := range devices {
		dev := fmt.Sprintf("dev%d", i)
		if err := s.CreateDevice(ctx, store.Device{ID: dev, SecretHash: []byte("h"), CreatedAt: t0, LastSeen: t0}); err != nil {
			t.Fatal(err)
		}
		var last uint64
		for j := range 2 {
			q, err := s.Enqueue(ctx, store.Queued{DeviceID: dev, ChannelID: "ch", Kind: "raw", Class: 3, Body: []byte{byte(j)}, AcceptedAt: t0, DueAt: t0}, store.EnqueueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			last = q.Seq
		}
		s.AckLater(dev, last)
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := range devices {
		dev := fmt.Sprintf("dev%d", i)
		for {
			p, err := s.Pending(ctx, dev, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(p) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d still pending 30 s after its lazy ack", dev, len(p))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
