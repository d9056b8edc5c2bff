package storage

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

// TestUnifiedPushOutbox: a registration's outbox keeps at most its backlog
// (a flood to an app that never answers drops the oldest, and says how
// many), an ack deletes one message and counts it once, and forgetting a
// registration forgets its messages, leaving other registrations' alone.
func TestUnifiedPushOutbox(t *testing.T) {
	ctx := context.Background()
	s := openTestDevice(t, filepath.Join(t.TempDir(), "herald.db")).Phone("")
	if err := s.SaveIdentity(ctx, Identity{Service: "svc", DeviceID: "dev", Secret: "s", EnrolledAt: devT0}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []UnifiedPushRegistration{
		{Token: "flood", Service: "org.example.A", App: "a~1", Version: 1, CreatedAt: devT0},
		{Token: "calm", Service: "org.example.B", App: "b~1", VAPID: "key", Version: 2, CreatedAt: devT0},
	} {
		if err := s.SaveUnifiedPush(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	const backlog = 10
	var dropped int64
	err := s.Apply(ctx, "svc", 1, devT0, func(tx *ApplyTx, _ uint64) error {
		if reg, ok, err := tx.UnifiedPushByApp("b~1"); err != nil || !ok || reg.Token != "calm" || reg.VAPID != "key" {
			return fmt.Errorf("UnifiedPushByApp(b~1) = %+v %v %v", reg, ok, err)
		}
		if _, ok, err := tx.UnifiedPushByApp("plain-app"); err != nil || ok {
			return fmt.Errorf("an ordinary app is a UnifiedPush registration: %v %v", ok, err)
		}
		if _, _, err := tx.AddUnifiedPush("calm", "c", []byte("calm"), backlog); err != nil {
			return err
		}
		for i := range backlog + 5 {
			_, d, err := tx.AddUnifiedPush("flood", fmt.Sprint(i), []byte{byte(i)}, backlog)
			if err != nil {
				return err
			}
			dropped += d
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if dropped != 5 {
		t.Errorf("dropped %d, want 5", dropped)
	}
	msgs, err := s.UnifiedPushOutbox(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != backlog+1 || msgs[0].Token != "calm" || msgs[1].MessageID != "5" || msgs[len(msgs)-1].MessageID != "14" {
		t.Fatalf("outbox = %d messages, first %+v", len(msgs), msgs[0])
	}
	if page, err := s.UnifiedPushOutbox(ctx, msgs[5].ID, 3); err != nil || len(page) != 3 || page[0].ID != msgs[6].ID {
		t.Errorf("the page after %d = %+v %v", msgs[5].ID, page, err)
	}
	for range 2 { // a repeated ack counts once
		if err := s.AckUnifiedPush(ctx, msgs[0].ID, "acked"); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := s.Counters(ctx); c["acked"] != 1 {
		t.Errorf("acked = %d, want 1", c["acked"])
	}
	if err := s.DeleteUnifiedPush(ctx, "flood"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UnifiedPush(ctx, "flood"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted registration: %v", err)
	}
	if msgs, _ := s.UnifiedPushOutbox(ctx, 0, 100); len(msgs) != 0 {
		t.Errorf("outbox after deleting = %d messages", len(msgs))
	}
	regs, err := s.UnifiedPushes(ctx)
	if err != nil || len(regs) != 1 || regs[0].Token != "calm" || regs[0].Version != 2 {
		t.Errorf("registrations = %+v %v", regs, err)
	}
}
