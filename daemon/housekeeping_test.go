package daemon_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// TestHousekeeping: the toast history and the events of an app that never
// comes back are bounded by count at each pruning, and by age as the
// daemon's (fake) clock moves on.
func TestHousekeeping(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fake := clock.NewFake(t0)
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), Clock: fake, History: daemon.History{
		ToastsKept: 3, ToastsMaxAge: 24 * time.Hour, EventsKept: 2, EventsMaxAge: 2 * time.Hour, Every: time.Hour}})
	ctx := context.Background()
	yes := true
	ch, err := d.Client.Open(ctx, "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		body := (&mpns.Toast{Text1: "toast", Text2: string(rune('a' + i))}).XML()
		req, _ := http.NewRequest(http.MethodPost, ch.URI, bytes.NewReader(body))
		req.Header.Set(mpns.HeaderTarget, "toast")
		req.Header.Set(mpns.HeaderNotificationClass, "2")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get(mpns.HeaderNotificationStatus) != mpns.StatusReceived {
			t.Fatalf("toast %d: %d %v", i, resp.StatusCode, resp.Header)
		}
	}
	toasts := func() int {
		ts, err := d.StoreForTest().Toasts(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		return len(ts)
	}
	events := func(appID string) int {
		es, err := d.StoreForTest().Events(ctx, appID, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	testenv.Eventually(t, 10*time.Second, "5 toasts shown", func() bool { return toasts() == 5 })
	// "gone" stopped taking its events long ago; "recent" one hour later.
	for i := range 4 {
		if _, err := d.StoreForTest().AddEvent(ctx, "gone", app.EventRaw, []byte(`{}`), t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.StoreForTest().AddEvent(ctx, "recent", app.EventRaw, []byte(`{}`), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	// The pruning timer is armed after the first pruning at start.
	waitTimer := func(at time.Time) {
		testenv.Eventually(t, 10*time.Second, "pruning timer at "+at.String(), func() bool {
			for _, p := range fake.Pending() {
				if p.Equal(at) {
					return true
				}
			}
			return false
		})
	}
	waitTimer(t0.Add(time.Hour))
	fake.Advance(time.Hour)
	testenv.Eventually(t, 10*time.Second, "pruned by count", func() bool {
		return toasts() == 3 && events("gone") == 2 && events("recent") == 1
	})
	if c := counter(t, d, "toasts_pruned"); c != 2 {
		t.Errorf("toasts_pruned %d, want 2", c)
	}
	// At three hours "gone"'s events are older than two hours; "recent"'s
	// is not, yet.
	waitTimer(t0.Add(2 * time.Hour))
	fake.Advance(time.Hour)
	waitTimer(t0.Add(3 * time.Hour))
	if events("gone") != 2 {
		t.Fatalf("gone's events pruned before they were two hours old")
	}
	fake.Advance(time.Hour)
	testenv.Eventually(t, 10*time.Second, "gone's events pruned by age", func() bool {
		return events("gone") == 0 && events("recent") == 1 && toasts() == 3
	})
	waitTimer(t0.Add(4 * time.Hour))
	fake.Advance(22 * time.Hour) // the timer fires once, at the new time
	testenv.Eventually(t, 10*time.Second, "everything pruned by age", func() bool {
		return toasts() == 0 && events("recent") == 0
	})
	if c := counter(t, d, "events_pruned"); c != 5 {
		t.Errorf("events_pruned %d, want 5", c)
	}
}
