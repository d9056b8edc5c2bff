package e2e

import (
	"bytes"
	"context"
	"maps"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// TestInProcess runs the service and a daemon in this process, talking over
// real loopback sockets, and sends toast, tile and raw as a cloud service.
func TestInProcess(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	c := d.Client
	yes := true
	ch, err := c.Open(ctxFor(t, 10*time.Second), "demo", app.OpenRequest{Toast: &yes, Tile: &yes})
	if err != nil {
		t.Fatalf("opening channel: %v", err)
	}
	if !ch.Toast || !ch.Tile {
		t.Fatalf("channel not bound: %+v", ch)
	}
	sleeper, err := c.Open(ctxFor(t, 10*time.Second), "sleeper", app.OpenRequest{})
	if err != nil {
		t.Fatalf("opening second channel: %v", err)
	}
	if sleeper.URI == ch.URI {
		t.Fatal("two apps got the same channel URI")
	}

	t.Run("toast to the shell", func(t *testing.T) {
		mustReceive(t, ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "toast-shell-1", body: []byte(toastHello)})
		var toasts []app.Toast
		testenv.Eventually(t, 10*time.Second, "toast recorded", func() bool {
			toasts, err = c.Toasts(context.Background(), "demo")
			return err == nil && len(toasts) == 1
		})
		got := toasts[0]
		if got.Text1 != "Hello" || got.Text2 != "from the cloud" || got.Param != "/Inbox.xaml?id=7" ||
			got.ShownBy != "shell" || got.MessageID != "toast-shell-1" || got.App != "demo" {
			t.Fatalf("toast recorded as %+v", got)
		}
		waitCounter(t, c, daemon.CountToastsShell, 1)
	})

	t.Run("tile merged field by field", func(t *testing.T) {
		steps := []struct {
			name  string
			inner string
			want  map[string]string
		}{
			{"first update", `<wp:BackgroundImage>/Images/bg.png</wp:BackgroundImage><wp:Count>5</wp:Count><wp:Title>Inbox</wp:Title>`,
				map[string]string{"BackgroundImage": "/Images/bg.png", "Count": "5", "Title": "Inbox"}},
			{"omitted fields keep their value", `<wp:Count>7</wp:Count><wp:BackTitle>Unread</wp:BackTitle>`,
				map[string]string{"BackgroundImage": "/Images/bg.png", "Count": "7", "Title": "Inbox", "BackTitle": "Unread"}},
			{"Action=Clear clears", `<wp:Count Action="Clear"></wp:Count><wp:Title>Mail</wp:Title>`,
				map[string]string{"BackgroundImage": "/Images/bg.png", "Title": "Mail", "BackTitle": "Unread"}},
		}
		for i, st := range steps {
			mustReceive(t, ch.URI, mpnsRequest{target: "token", class: "1", messageID: "tile-" + st.name, body: tileXML(st.inner)})
			waitCounter(t, c, daemon.CountTilesUpdated, int64(i+1))
			tiles, err := c.Tiles(context.Background(), "demo")
			if err != nil {
				t.Fatal(err)
			}
			if len(tiles) != 1 || tiles[0].TileID != "" || tiles[0].Template != "" {
				t.Fatalf("%s: tiles = %+v, want the one primary WP7 tile", st.name, tiles)
			}
			if !maps.Equal(tiles[0].Fields, st.want) {
				t.Fatalf("%s: fields = %v, want %v", st.name, tiles[0].Fields, st.want)
			}
		}
	})

	t.Run("foreground app gets toast and raw", func(t *testing.T) {
		stream, err := c.Listen(ctxFor(t, 10*time.Second), "demo", app.ListenOptions{Foreground: true})
		if err != nil {
			t.Fatalf("listening: %v", err)
		}
		defer stream.Close()
		// The first event says the link is up; it also means the daemon
		// has recorded the app as running in the foreground.
		if e := nextEvent(t, stream, app.EventStatus); e.Connected == nil || !*e.Connected {
			t.Fatalf("first event %+v, want connected", e)
		}

		mustReceive(t, ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "toast-app-1", body: toastXML("Hi", "app")})
		e := nextEvent(t, stream, app.EventToast)
		if e.App != "demo" || e.Text1 != "Hi" || e.Text2 != "app" || e.MessageID != "toast-app-1" {
			t.Fatalf("toast event %+v", e)
		}
		toasts, err := c.Toasts(context.Background(), "demo")
		if err != nil {
			t.Fatal(err)
		}
		if len(toasts) != 2 || toasts[1].ShownBy != "app" || toasts[1].MessageID != "toast-app-1" {
			t.Fatalf("toasts = %+v, want the second shown by the app", toasts)
		}

		// Raw bodies are opaque bytes: not UTF-8, not XML, despite the
		// text/xml Content-Type the libraries send.
		raw := append([]byte(`{"sync":true}`), 0x00, 0xff, 0xfe, '<', '&')
		mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: "raw-1", body: raw})
		e = nextEvent(t, stream, app.EventRaw)
		if e.App != "demo" || e.MessageID != "raw-1" || !bytes.Equal(e.Body, raw) {
			t.Fatalf("raw event %+v, want body %q", e, raw)
		}
		waitCounter(t, c, daemon.CountToastsApp, 1)
		waitCounter(t, c, daemon.CountRawDelivered, 1)
	})

	t.Run("background app gets raw, the shell its toasts", func(t *testing.T) {
		stream, err := c.Listen(ctxFor(t, 10*time.Second), "demo", app.ListenOptions{})
		if err != nil {
			t.Fatalf("listening: %v", err)
		}
		defer stream.Close()
		nextEvent(t, stream, app.EventStatus)
		mustReceive(t, ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "toast-bg", body: toastXML("In", "background")})
		waitCounter(t, c, daemon.CountToastsShell, 2)
		mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: "raw-bg", body: []byte("bg")})
		// Events arrive in order, so the toast would be seen before the raw.
		if e := nextEvent(t, stream, app.EventRaw); e.MessageID != "raw-bg" || string(e.Body) != "bg" {
			t.Fatalf("raw event %+v", e)
		}
		waitCounter(t, c, daemon.CountToastsApp, 1)
	})

	t.Run("raw dropped for apps not running", func(t *testing.T) {
		waitNotRunning(t, c, "demo") // its stream was closed cleanly above
		// MPNS's service cannot know whether the app runs: it accepts, and
		// the phone drops.
		mustReceive(t, sleeper.URI, mpnsRequest{class: "3", messageID: "raw-2", body: []byte("never seen")})
		waitCounter(t, c, daemon.CountRawDropped, 1)
		mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: "raw-3", body: []byte("too late")})
		waitCounter(t, c, daemon.CountRawDropped, 2)
		waitCounter(t, c, daemon.CountRawDelivered, 2)
	})

	t.Run("closed channel expires", func(t *testing.T) {
		if err := c.Close(ctxFor(t, 10*time.Second), "sleeper"); err != nil {
			t.Fatalf("closing channel: %v", err)
		}
		r := post(t, sleeper.URI, mpnsRequest{class: "3", messageID: "raw-closed", body: []byte("x")})
		if r.status != 404 || r.notification != "Dropped" || r.subscription != "Expired" {
			t.Fatalf("POST to a closed channel: %d %s/%s, want 404 Dropped/Expired", r.status, r.notification, r.subscription)
		}
		mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: "raw-open", body: []byte("y")})
	})
}
