package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// TestStatusOfflineAndConfig: a link held offline (the start screen's
// connectivity switch) reports "offline" with no next attempt, whatever
// its backoff was doing, and the status carries the effective
// configuration it was given.
func TestStatusOfflineAndConfig(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), Effective: map[string]any{"ui": "127.0.0.1:8791", "toasts_kept": 1000}})
	ctx := context.Background()
	st, err := d.Client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != "connected" || st.Config["ui"] != "127.0.0.1:8791" || st.Config["toasts_kept"] != float64(1000) {
		t.Fatalf("status %q, config %v", st.State, st.Config)
	}
	d.Link().SetOffline(true)
	for range 20 { // every read while held offline, not just the first
		st, err = d.Client.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != app.StateOffline || st.Connected || st.RetryAt != nil || st.Since != nil {
			t.Fatalf("held offline: state %q, connected %v, retry %v", st.State, st.Connected, st.RetryAt)
		}
	}
	d.Link().SetOffline(false)
	testenv.Eventually(t, 10*time.Second, "connected again", func() bool {
		st, err := d.Client.Status(ctx)
		return err == nil && st.State == "connected" && st.Connected
	})
}
