package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"sync"
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

// Ctrl-C on `herald listen` closes the event stream as an app that stops
// does, so the daemon stops counting the app as running at once rather
// than after its grace period (an hour here, so that only a clean close
// can pass).
func TestListenInterruptStopsAppAtOnce(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), RunningGrace: time.Hour})
	bg := context.Background()
	if _, err := d.Client.Open(bg, "demo", app.OpenRequest{}); err != nil {
		t.Fatal(err)
	}
	running := func() bool {
		st, err := d.Status(bg)
		if err != nil {
			t.Fatal(err)
		}
		return slices.Contains(st.Running, "demo")
	}
	ctx, interrupt := context.WithCancel(bg)
	defer interrupt()
	var out safeBuffer
	done := make(chan int, 1)
	go func() { done <- listen(ctx, app.NewClient(d.Socket), "demo", true, false, &out, io.Discard) }()
	testenv.Eventually(t, 10*time.Second, "demo running", running)
	// The daemon counts the app running as it accepts the stream, a moment
	// before the first event reaches the command; a Ctrl-C before that
	// event is app.TestListenCancelledBeforeFirstEventClosesCleanly's.
	testenv.Eventually(t, 10*time.Second, "the connection event printed", func() bool {
		return strings.Contains(out.String(), `"type":"connection"`)
	})

	interrupt()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("herald listen exited %d after Ctrl-C, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("herald listen did not stop on Ctrl-C")
	}
	testenv.Eventually(t, 10*time.Second, "demo no longer running", func() bool { return !running() })
}

// safeBuffer is a bytes.Buffer the command writes while the test reads.
type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
