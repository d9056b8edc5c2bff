package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
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
	mustReceive(t, ch.URI, mpnsRequest{messageID: "r1", body: []byte("ping")})
	var st app.Status
	testenv.Eventually(t, 10*time.Second, "raw counted as dropped", func() bool {
		st, err = d.Client.Status(ctx)
		return err == nil && st.Counters[daemon.CountRawDropped] == 1
	})
	if st.Counters[daemon.CountRawDelivered] != 0 || st.AppliedSeq != 1 {
		t.Fatalf("status %+v", st)
	}
	testenv.Eventually(t, 10*time.Second, "acknowledged on the service", func() bool {
		dev, err := svc.Store.Device(ctx, st.DeviceID)
		q, qerr := svc.Store.Pending(ctx, st.DeviceID, 0)
		return err == nil && qerr == nil && dev.AckedSeq == 1 && len(q) == 0
	})
}

// TestRenewThroughTheDaemon rotates a URI the way `herald open --renew`
// does: through the app library and a real daemon.
func TestRenewThroughTheDaemon(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ctx := t.Context()
	old, err := d.Client.Open(ctx, "demo", app.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := d.Client.Open(ctx, "demo", app.OpenRequest{})
	if err != nil || again.URI != old.URI {
		t.Fatalf("opening again without renew: %v, %q then %q", err, old.URI, again.URI)
	}
	renewed, err := d.Client.Open(ctx, "demo", app.OpenRequest{Renew: true})
	if err != nil || renewed.URI == old.URI {
		t.Fatalf("renew: %v, %q then %q", err, old.URI, renewed.URI)
	}
	if r := post(t, old.URI, mpnsRequest{body: []byte("x")}); r.status != 404 || r.subscription != "Expired" {
		t.Fatalf("old URI after renew: %d %q", r.status, r.subscription)
	}
	mustReceive(t, renewed.URI, mpnsRequest{body: []byte("x")})
	chans, err := d.Client.Channels(ctx, "demo")
	if err != nil || len(chans) != 1 || chans[0].URI != renewed.URI {
		t.Fatalf("daemon's channels after renew: %+v %v", chans, err)
	}
}
