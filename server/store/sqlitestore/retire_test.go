package sqlitestore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store/sqlitestore"
)

func TestRetireDevice(t *testing.T) {
	ctx := context.Background()
	s := openService(t, true)
	addDevice(t, s, "old")
	addDevice(t, s, "other")
	for _, c := range []sqlitestore.Channel{
		{ID: "c1", DeviceID: "old", App: "a", Name: "n", Token: "tok1", CreatedAt: t0},
		{ID: "c2", DeviceID: "old", App: "b", Name: "n", Token: "tok2", CreatedAt: t0},
		{ID: "c3", DeviceID: "other", App: "a", Name: "n", Token: "tok3", CreatedAt: t0},
	} {
		if err := s.CreateChannel(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// Looked up once, so the cache holds it: retiring must drop it there too.
	if _, err := s.ChannelByToken(ctx, "tok1"); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"old", "old", "other"} {
		if _, err := s.Enqueue(ctx, queued(dev, "m"), sqlitestore.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	at := t0.Add(time.Hour)
	if err := s.RetireDevice(ctx, "old", at); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"tok1", "tok2"} {
		if _, err := s.ChannelByToken(ctx, tok); !errors.Is(err, sqlitestore.ErrNotFound) {
			t.Errorf("channel %s after retiring its device: %v; want ErrNotFound", tok, err)
		}
	}
	if q, err := s.Pending(ctx, "old", 0); err != nil || len(q) != 0 {
		t.Errorf("retired device's queue: %d entries, %v; want empty", len(q), err)
	}
	d, err := s.Device(ctx, "old")
	if err != nil || !d.RetiredAt.Equal(at) || string(d.SecretHash) != "h" {
		t.Errorf("retired device: %+v, %v; want its row and key kept, retired at %v", d, err, at)
	}
	// The other device is untouched.
	if _, err := s.ChannelByToken(ctx, "tok3"); err != nil {
		t.Errorf("another device's channel: %v", err)
	}
	if q, err := s.Pending(ctx, "other", 0); err != nil || len(q) != 1 {
		t.Errorf("another device's queue: %d entries, %v; want 1", len(q), err)
	}
	if d, err := s.Device(ctx, "other"); err != nil || !d.RetiredAt.IsZero() {
		t.Errorf("another device: %+v, %v; want not retired", d, err)
	}
	if err := s.RetireDevice(ctx, "nobody", at); !errors.Is(err, sqlitestore.ErrNotFound) {
		t.Errorf("retiring an unknown device: %v; want ErrNotFound", err)
	}
}
