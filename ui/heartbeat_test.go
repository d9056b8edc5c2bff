package ui_test

import (
	"context"
	"testing"

	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/ui"
)

// The page's state carries the heartbeat line: interval, ceiling, next
// probe and the day's failed probes.
func TestStateHeartbeat(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	u := ui.New(ui.Config{Phones: &ui.Single{D: d.Daemon}, Logger: testenv.Logger(t)})
	st, err := u.PhoneState(context.Background(), "", d.Daemon)
	if err != nil {
		t.Fatal(err)
	}
	if hb := st.Heartbeat; hb.Interval != "4m0s" || hb.Settled || hb.Ceiling != "1h58m0s" || hb.NextProbe != nil || hb.FailedProbes != 0 {
		t.Fatalf("heartbeat %+v", hb)
	}
}
