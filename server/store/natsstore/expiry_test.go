package natsstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/natsstore"
)

// A message with an expiry carries it as its JetStream TTL, so the stream
// itself deletes it: the queue's length drops without an ack, while a
// message without expiry stays.
func TestExpiredMessagesDeletedByStream(t *testing.T) {
	s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: natstest.Run(t).URL(), Prefix: "ttl"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	if err := s.CreateDevice(ctx, store.Device{ID: "dev", CreatedAt: time.Now(), LastSeen: time.Now()}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, q := range []store.Queued{
		{DeviceID: "dev", ChannelID: "ch", Kind: "webpush", Body: []byte("short"), AcceptedAt: now, DueAt: now, ExpiresAt: now.Add(100 * time.Millisecond)},
		{DeviceID: "dev", ChannelID: "ch", Kind: "raw", Class: 3, Body: []byte("kept"), AcceptedAt: now, DueAt: now},
	} {
		if _, err := s.Enqueue(ctx, q, store.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// JetStream's TTLs are whole seconds; the bound is a failsafe.
	testenv.Eventually(t, 15*time.Second, "the stream deleted the expired message", func() bool {
		n, err := s.QueueLength(ctx)
		return err == nil && n == 1
	})
	qs, err := s.Pending(ctx, "dev", 0)
	if err != nil || len(qs) != 1 || string(qs[0].Body) != "kept" {
		t.Fatalf("pending %+v, %v", qs, err)
	}
}
