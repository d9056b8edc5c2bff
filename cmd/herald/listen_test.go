package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// `herald listen` prints each event as app.Event encodes it, so no field
// the local API defines is lost on the way: the power level of a
// PowerLevelChanged event, a raw body, the event id.
func TestListenPrintsAppEvents(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ctx := context.Background()
	ch, err := d.Client.Open(ctx, "demo", app.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}

	out, w := io.Pipe()
	done := make(chan int, 1)
	go func() { done <- listenCmd([]string{"demo", "--socket", d.Socket}, w, io.Discard) }()
	t.Cleanup(func() {
		// The next event finds the output closed and ends the command.
		out.Close()
		d.SetPower(ctx, "critical")
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("herald listen did not stop when its output closed")
		}
	})
	testenv.Eventually(t, 10*time.Second, "demo running", func() bool {
		st, err := d.Status(ctx)
		return err == nil && slices.Contains(st.Running, "demo")
	})
	lines := bufio.NewScanner(out)
	next := func(typ string) app.Event {
		t.Helper()
		for range 10 {
			if !lines.Scan() {
				t.Fatalf("herald listen stopped: %v", lines.Err())
			}
			var e app.Event
			if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
				t.Fatalf("herald listen printed %q: %v", lines.Text(), err)
			}
			if e.Type == typ {
				return e
			}
		}
		t.Fatalf("no %s event in ten lines", typ)
		return app.Event{}
	}

	if err := d.SetPower(ctx, "low"); err != nil {
		t.Fatal(err)
	}
	if e := next(app.EventError); e.ErrorKind != app.ErrorPowerLevelChanged || e.Power != "low" || e.App != "demo" || e.ID == 0 {
		t.Fatalf("power event printed as %+v", e)
	}
	res, err := (&mpns.Client{}).Send(ctx, ch.URI, mpns.Raw("ping"), mpns.SendOptions{MessageID: "m-1"})
	if err != nil || !res.Received() {
		t.Fatalf("sending raw: %+v %v", res, err)
	}
	if e := next(app.EventRaw); string(e.Body) != "ping" || e.MessageID != "m-1" {
		t.Fatalf("raw event printed as %+v", e)
	}
}
