package sqlitestore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// TestDeleteDevice deletes a device with its channels and queue, keeps one
// that was seen again after it was found expired, and leaves others alone.
func TestDeleteDevice(t *testing.T) {
	ctx := context.Background()
	s := openService(t, true)
	for _, id := range []string{"old", "back", "new"} {
		addDevice(t, s, id)
		if err := s.CreateChannel(ctx, sqlitestore.Channel{ID: "ch-" + id, DeviceID: id, App: "a", Name: "n", Token: "tok-" + id, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Enqueue(ctx, queued(id, "m"), sqlitestore.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		// Cached, as a sender's lookup would have left it.
		if _, err := s.ChannelByToken(ctx, "tok-"+id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.TouchDevice(ctx, "new", t0.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	cutoff := t0.Add(time.Hour)
	ids, err := s.ExpiredDevices(ctx, cutoff, 10)
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, []string{"back", "old"}) {
		t.Fatalf("expired: %v %v", ids, err)
	}
	// "back" reconnects between the look and the delete.
	if err := s.TouchDevice(ctx, "back", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		id      string
		deleted bool
	}{{"old", true}, {"back", false}} {
		ok, err := s.DeleteDevice(ctx, tt.id, cutoff)
		if err != nil || ok != tt.deleted {
			t.Fatalf("DeleteDevice(%s) = %v %v, want %v", tt.id, ok, err, tt.deleted)
		}
	}
	if _, err := s.Device(ctx, "old"); !errors.Is(err, sqlitestore.ErrNotFound) {
		t.Fatalf("old device: %v", err)
	}
	if _, err := s.ChannelByToken(ctx, "tok-old"); !errors.Is(err, sqlitestore.ErrNotFound) {
		t.Fatalf("old channel by token: %v, want not found (not the cached copy)", err)
	}
	if p, err := s.Pending(ctx, "old", 0); err != nil || len(p) != 0 {
		t.Fatalf("old queue: %v %v", p, err)
	}
	for _, id := range []string{"back", "new"} {
		if _, err := s.ChannelByToken(ctx, "tok-"+id); err != nil {
			t.Fatalf("%s channel: %v", id, err)
		}
		if p, err := s.Pending(ctx, id, 0); err != nil || len(p) != 1 {
			t.Fatalf("%s queue: %v %v", id, p, err)
		}
	}
}
