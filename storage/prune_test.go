package storage

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestPrune bounds the toast history and app events by count and by age,
// per phone and per app, and counts what it deletes.
func TestPrune(t *testing.T) {
	d := openTestDevice(t, filepath.Join(t.TempDir(), "herald.db"))
	ctx := context.Background()
	s, other := d.Phone("p1"), d.Phone("p2")
	for _, st := range []*DeviceStore{s, other} {
		if err := st.SaveIdentity(ctx, Identity{Service: "svc", DeviceID: "dev", Secret: "s", EnrolledAt: devT0}); err != nil {
			t.Fatal(err)
		}
	}
	// Ten toasts an hour apart on both phones; app "gone" has 8 events an
	// hour apart, app "fresh" 2 recent ones.
	for i := range 10 {
		at := devT0.Add(time.Duration(i) * time.Hour)
		for _, st := range []*DeviceStore{s, other} {
			err := st.Apply(ctx, "svc", uint64(i+1), at, func(tx *ApplyTx, _ uint64) error {
				if _, err := tx.AddToast(ToastRecord{App: "demo", Text1: "t", ShownBy: "shell", Seq: uint64(i + 1)}); err != nil {
					return err
				}
				if i < 8 {
					if _, err := tx.AddEvent("gone", "raw", []byte(`{}`)); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 2 {
		if _, err := s.AddEvent(ctx, "fresh", "raw", []byte(`{}`), devT0.Add(time.Duration(8+i)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}

	// Keep 6 toasts and nothing older than hour 3; keep 5 events per app
	// and nothing older than hour 1.
	p, err := s.Prune(ctx, 6, devT0.Add(3*time.Hour), 5, devT0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if p.Toasts != 4 || p.Events != 3 {
		t.Fatalf("pruned %+v, want 4 toasts and 3 events", p)
	}
	toasts, err := s.Toasts(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(toasts) != 6 || toasts[0].Seq != 5 || toasts[5].Seq != 10 {
		t.Fatalf("toasts left: %d, first seq %d", len(toasts), toasts[0].Seq)
	}
	gone, _ := s.Events(ctx, "gone", 0, 100)
	fresh, _ := s.Events(ctx, "fresh", 0, 100)
	if len(gone) != 5 || len(fresh) != 2 {
		t.Fatalf("events left: gone %d, fresh %d; want 5 and 2", len(gone), len(fresh))
	}
	// By age alone: everything older than hour 9 goes.
	p, err = s.Prune(ctx, 100, devT0.Add(9*time.Hour), 100, devT0.Add(9*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if p.Toasts != 5 || p.Events != 6 {
		t.Fatalf("pruned by age %+v, want 5 toasts and 6 events", p)
	}
	c, err := s.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c["toasts_pruned"] != 9 || c["events_pruned"] != 9 {
		t.Fatalf("counters %v", c)
	}
	// The other phone in the same database is untouched.
	if ts, _ := other.Toasts(ctx, "", 0); len(ts) != 10 {
		t.Fatalf("other phone has %d toasts, want 10", len(ts))
	}
	if _, err := s.Prune(ctx, 0, devT0, 5, devT0); err == nil {
		t.Fatal("Prune keeping 0 toasts: no error")
	}
}
