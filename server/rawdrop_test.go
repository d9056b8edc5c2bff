package server_test

import (
	"context"
	"testing"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// TestRawWhileAppClosed: a raw notification for an app that is not running
// is dropped on the device, as MPNS did, counted where `herald status`
// shows it, and acknowledged, so the service does not send it again.
func TestRawWhileAppClosed(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ctx := context.Background()
	ch, err := d.Client.Open(ctx, "closed", app.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, post(t, ch.URI, mpns.KindRaw, "", "r1", []byte("ping")), 200, "Received", "Connected")
	var st app.Status
	testenv.Eventually(t, frameWait, "raw counted as dropped", func() bool {
		st, err = d.Client.Status(ctx)
		return err == nil && st.Counters[daemon.CountRawDropped] == 1
	})
	if st.Counters[daemon.CountRawDelivered] != 0 || st.AppliedSeq != 1 {
		t.Fatalf("status %+v", st)
	}
	testenv.Eventually(t, frameWait, "acknowledged on the service", func() bool {
		dev, err := svc.Store.Device(ctx, st.DeviceID)
		q, qerr := svc.Store.Pending(ctx, st.DeviceID, 0)
		return err == nil && qerr == nil && dev.AckedSeq == 1 && len(q) == 0
	})
}
