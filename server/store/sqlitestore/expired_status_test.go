package sqlitestore

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/storetest"
)

// A named message swept past its TTL leaves an outcome behind, so its
// message resource says expired rather than unknown.
func TestExpiredMessageRemembered(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "svc.db"), Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Start(t, s)
	now := time.Now()
	if err := s.CreateDevice(ctx, store.Device{ID: "dev", SecretHash: []byte("h"), CreatedAt: now, LastSeen: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateChannel(ctx, store.Channel{ID: "ch", DeviceID: "dev", App: "a", Name: "default", Token: "tok", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "webpush", MessageID: "late", Body: []byte("x"),
		AcceptedAt: now.Add(-time.Hour), DueAt: now.Add(-time.Hour), ExpiresAt: now.Add(-time.Minute)}, store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpired(ctx, 10); err != nil || n != 1 {
		t.Fatalf("DeleteExpired = %d, %v; want 1", n, err)
	}
	st, err := s.MessageStatus(ctx, "dev", "ch", "late")
	if err != nil || st.State != store.MessageExpired {
		t.Fatalf("status after the sweep: %+v, %v; want expired", st, err)
	}
}
