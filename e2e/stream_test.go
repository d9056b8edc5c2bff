package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// TestAckedOnCloseNotReplayed: an app that takes an event, closes its
// stream (acknowledging it) and at once listens again must not get that
// event a second time. The new stream replaces the old one on the daemon
// while the old one's last ack may still be unread, so the loop gives that
// race many chances.
func TestAckedOnCloseNotReplayed(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ch, err := d.Client.Open(ctxFor(t, 10*time.Second), "demo", app.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	listen := func() *app.Stream {
		t.Helper()
		s, err := d.Client.Listen(ctxFor(t, 10*time.Second), "demo", app.ListenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// The app counts as running once the daemon has said where the
		// link stands; a replayed event would come before this one.
		nextEvent(t, s, app.EventStatus)
		return s
	}
	stream := listen()
	for i := range 20 {
		id := fmt.Sprintf("raw-%d", i)
		mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: id, body: []byte(id)})
		if e := nextEvent(t, stream, app.EventRaw); e.MessageID != id {
			t.Fatalf("round %d: got %s, want %s", i, e.MessageID, id)
		}
		stream.Close()
		stream = listen()
	}
	mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: "last", body: []byte("last")})
	if e := nextEvent(t, stream, app.EventRaw); e.MessageID != "last" {
		t.Fatalf("got %s again after it was acknowledged, want last", e.MessageID)
	}
	stream.Close()
}

// TestRawRightAfterListen: once Listen returns the app counts as running,
// so a raw notification sent at once reaches it instead of being dropped.
func TestRawRightAfterListen(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ch, err := d.Client.Open(ctxFor(t, 10*time.Second), "demo", app.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		stream, err := d.Client.Listen(ctxFor(t, 10*time.Second), "demo", app.ListenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("raw-%d", i)
		mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: id, body: []byte(id)})
		if e := nextEvent(t, stream, app.EventRaw); e.MessageID != id {
			t.Fatalf("round %d: got %s, want %s", i, e.MessageID, id)
		}
		stream.Close()
	}
	waitCounter(t, d.Client, daemon.CountRawDropped, 0)
}
