package app_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// recorder collects a channel's callbacks.
type recorder struct {
	mu     sync.Mutex
	events []string
	raws   []app.RawNotification
	toasts []app.ToastNotification
	errs   []app.ChannelError
	uris   []string
	status []bool
}

func (r *recorder) handlers() app.Handlers {
	add := func(f func()) {
		r.mu.Lock()
		defer r.mu.Unlock()
		f()
	}
	return app.Handlers{
		ChannelURIUpdated:       func(uri string) { add(func() { r.uris = append(r.uris, uri) }) },
		ConnectionStatusChanged: func(c bool) { add(func() { r.status = append(r.status, c) }) },
		ErrorOccurred:           func(e app.ChannelError) { add(func() { r.errs = append(r.errs, e) }) },
		HTTPNotificationReceived: func(n app.RawNotification) {
			add(func() { r.raws = append(r.raws, n) })
		},
		ShellToastNotificationReceived: func(n app.ToastNotification) {
			add(func() { r.toasts = append(r.toasts, n) })
		},
	}
}

// wait polls until cond, run under the recorder's lock, holds.
func (r *recorder) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, what, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return cond()
	})
}

// send posts a notification to uri as a cloud service would and returns
// the HTTP status and X-NotificationStatus.
func send(t *testing.T, uri, target, class, messageID string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if target != "" {
		req.Header.Set(mpns.HeaderTarget, target)
	}
	req.Header.Set(mpns.HeaderNotificationClass, class)
	if messageID != "" {
		req.Header.Set(mpns.HeaderMessageID, messageID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(mpns.HeaderNotificationStatus)
}

func msgID(i int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", i) }

// TestNotificationChannel drives every method and event of the channel
// against a real daemon and notification service.
func TestNotificationChannel(t *testing.T) {
	ctx := context.Background()
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	c := d.Client

	if _, err := c.FindChannel(ctx, "notes", app.Handlers{}); !errors.Is(err, app.ErrNotOpened) {
		t.Fatalf("FindChannel before Open = %v, want ErrNotOpened", err)
	}

	rec := &recorder{}
	ch := c.NewChannel("notes", app.ChannelOptions{Name: "main", Foreground: true, Handlers: rec.handlers()})
	if err := ch.Open(ctx); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { ch.Stop() })
	uri := ch.ChannelURI()
	if uri == "" {
		t.Fatal("no URI after Open")
	}
	rec.wait(t, "URI and connection events", func() bool {
		return slices.Equal(rec.uris, []string{uri}) && slices.Equal(rec.status, []bool{true})
	})

	// Bindings.
	if ch.IsShellToastBound() || ch.IsShellTileBound() {
		t.Fatal("bound before binding")
	}
	if err := ch.BindToShellToast(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ch.BindToShellTile(ctx, "http://good.example/"); err != nil {
		t.Fatal(err)
	}
	if !ch.IsShellToastBound() || !ch.IsShellTileBound() || !slices.Equal(ch.Info().Domains, []string{"http://good.example/"}) {
		t.Fatalf("bindings not applied: %+v", ch.Info())
	}
	found, err := c.FindChannel(ctx, "notes", app.Handlers{})
	if err != nil {
		t.Fatal(err)
	}
	if fi := found.Info(); fi.URI != uri || fi.Name != "main" || !fi.Toast || !fi.Tile {
		t.Errorf("FindChannel = %+v", fi)
	}

	// Raw and foreground toast.
	if code, st := send(t, uri, "", "3", msgID(1), []byte("sync now")); code != 200 || st != mpns.StatusReceived {
		t.Fatalf("raw: %d %s", code, st)
	}
	rec.wait(t, "raw", func() bool { return len(rec.raws) == 1 })
	if r := rec.raws[0]; r.MessageID != msgID(1) || string(r.Body) != "sync now" {
		t.Errorf("raw = %+v", r)
	}
	toast := (&mpns.Toast{Text1: "Hi", Text2: "there", Param: "/note?id=4"}).XML()
	if code, st := send(t, uri, "toast", "2", msgID(2), toast); code != 200 || st != mpns.StatusReceived {
		t.Fatalf("toast: %d %s", code, st)
	}
	rec.wait(t, "toast", func() bool { return len(rec.toasts) == 1 })
	if got, want := rec.toasts[0], (app.ToastNotification{MessageID: msgID(2), Text1: "Hi", Text2: "there", Param: "/note?id=4"}); got != want {
		t.Errorf("toast = %+v, want %+v", got, want)
	}

	// A tile image from a domain the tile is not bound to.
	tile := (&mpns.Tile{Fields: []mpns.Field{{Name: "BackgroundImage", Value: "http://evil.example/a.png"}}}).XML()
	if code, st := send(t, uri, "token", "1", msgID(3), tile); code != 200 || st != mpns.StatusReceived {
		t.Fatalf("tile: %d %s", code, st)
	}
	rec.wait(t, "MessageBadContent", func() bool { return len(rec.errs) == 1 })
	if e := rec.errs[0]; e.Kind != app.ErrorMessageBadContent || e.MessageID != msgID(3) {
		t.Errorf("error = %+v", e)
	}

	// Power level.
	if err := c.SetPower(ctx, "low"); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "PowerLevelChanged", func() bool { return len(rec.errs) == 2 })
	if e := rec.errs[1]; e.Kind != app.ErrorPowerLevelChanged || e.Power != "low" {
		t.Errorf("error = %+v", e)
	}
	if err := c.SetPower(ctx, "normal"); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "PowerLevelChanged back", func() bool { return len(rec.errs) == 3 && rec.errs[2].Power == "normal" })

	// A new URI.
	renewed, err := c.Open(ctx, "notes", app.OpenRequest{Channel: "main", Renew: true})
	if err != nil {
		t.Fatal(err)
	}
	if renewed.URI == uri {
		t.Fatal("renew kept the URI")
	}
	rec.wait(t, "URI updated", func() bool { return slices.Equal(rec.uris, []string{uri, renewed.URI}) })
	if ch.ChannelURI() != renewed.URI {
		t.Errorf("ChannelURI = %s, want %s", ch.ChannelURI(), renewed.URI)
	}
	uri = renewed.URI

	// Unbinding: the service suppresses what is no longer bound.
	if err := ch.UnbindToShellToast(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ch.UnbindToShellTile(ctx); err != nil {
		t.Fatal(err)
	}
	if ch.IsShellToastBound() || ch.IsShellTileBound() {
		t.Fatalf("still bound: %+v", ch.Info())
	}
	if _, st := send(t, uri, "toast", "2", "", toast); st != mpns.StatusSuppressed {
		t.Errorf("toast after unbind: %s, want %s", st, mpns.StatusSuppressed)
	}
	okTile := (&mpns.Tile{Fields: []mpns.Field{{Name: "Count", Value: "3"}}}).XML()
	if _, st := send(t, uri, "token", "1", "", okTile); st != mpns.StatusSuppressed {
		t.Errorf("tile after unbind: %s, want %s", st, mpns.StatusSuppressed)
	}

	// The link going down.
	svc.Close()
	rec.wait(t, "disconnected", func() bool { return slices.Equal(rec.status, []bool{true, false}) })

}

// TestNotificationChannelCloseAndStop checks that Stop leaves the channel
// open with the app no longer running, and Close removes the channel.
func TestNotificationChannelCloseAndStop(t *testing.T) {
	ctx := context.Background()
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	rec := &recorder{}
	ch := d.Client.NewChannel("notes", app.ChannelOptions{Handlers: rec.handlers()})
	if err := ch.Open(ctx); err != nil {
		t.Fatal(err)
	}
	uri := ch.ChannelURI()
	testenv.Eventually(t, 10*time.Second, "app running", func() bool {
		st, err := d.Client.Status(ctx)
		return err == nil && slices.Contains(st.Running, "notes")
	})
	if err := ch.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "app stopped", func() bool {
		st, err := d.Client.Status(ctx)
		return err == nil && !slices.Contains(st.Running, "notes")
	})
	if code, _ := send(t, uri, "", "3", "", []byte("x")); code != 200 {
		t.Fatalf("raw after Stop: %d, want 200 (the channel stays open)", code)
	}
	testenv.Eventually(t, 10*time.Second, "raw dropped", func() bool {
		st, err := d.Client.Status(ctx)
		return err == nil && st.Counters[daemon.CountRawDropped] == 1
	})

	// A channel found again is opened with Open.
	again, err := d.Client.FindChannel(ctx, "notes", rec.handlers())
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if err := again.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if code, _ := send(t, uri, "", "3", "", []byte("x")); code != http.StatusNotFound {
		t.Errorf("raw after Close: %d, want 404", code)
	}
	if _, err := d.Client.Find(ctx, "notes"); !errors.Is(err, app.ErrNotOpened) {
		t.Errorf("Find after Close = %v, want ErrNotOpened", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.errs) != 0 {
		t.Errorf("errors reported: %+v", rec.errs)
	}
}

// TestNotificationChannelQuotas checks MPNS's limits and their error names:
// one channel per app, 30 per device.
func TestNotificationChannelQuotas(t *testing.T) {
	ctx := context.Background()
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	c := d.Client
	for i := range daemon.DefaultMaxChannels {
		if _, err := c.Open(ctx, fmt.Sprintf("app%02d", i), app.OpenRequest{}); err != nil {
			t.Fatalf("channel %d: %v", i+1, err)
		}
	}
	tests := []struct {
		name    string
		app     string
		channel string
		want    error
		code    string
	}{
		{"second channel name for an app", "app00", "other", app.ErrChannelExists, app.CodeChannelExists},
		{"31st channel on the device", "app30", "", app.ErrQuotaExceeded, app.CodeQuotaExceeded},
		{"same channel again is found", "app01", "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			ch := c.NewChannel(tt.app, app.ChannelOptions{Name: tt.channel, Handlers: rec.handlers()})
			err := ch.Open(ctx)
			defer ch.Stop()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Open = %v", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
			var ae *app.Error
			if !errors.As(err, &ae) || ae.Code != tt.code {
				t.Errorf("error code = %v, want %s", err, tt.code)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.errs) != 0 || len(rec.uris) != 0 {
				t.Errorf("a refused Open fired events: %+v %+v", rec.errs, rec.uris)
			}
		})
	}
}

// TestNotificationChannelOpenFailed opens a channel while the device
// cannot reach the notification service: Open fails with
// ChannelOpenFailed and ErrorOccurred reports it, as on the phone.
func TestNotificationChannelOpenFailed(t *testing.T) {
	ctx := context.Background()
	svc := testenv.Service(t, "", server.ServeConfig{})
	// The daemon waits this long for the link before it gives up on an
	// open; the link is down for good here, so the wait always fails.
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), OpenTimeout: 200 * time.Millisecond})
	svc.Close()
	testenv.Eventually(t, 10*time.Second, "link down", func() bool {
		st, err := d.Client.Status(ctx)
		return err == nil && !st.Connected
	})
	rec := &recorder{}
	ch := d.Client.NewChannel("late", app.ChannelOptions{Handlers: rec.handlers()})
	if err := ch.Open(ctx); !errors.Is(err, app.ErrChannelOpenFailed) {
		t.Fatalf("Open = %v, want ErrChannelOpenFailed", err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.errs) != 1 || rec.errs[0].Kind != app.ErrorChannelOpenFailed {
		t.Errorf("ErrorOccurred got %+v, want one %s", rec.errs, app.ErrorChannelOpenFailed)
	}
}
