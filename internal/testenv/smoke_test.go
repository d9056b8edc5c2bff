package testenv_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// TestToastEndToEnd is the shortest whole path: a POST to a channel URI
// becomes a toast in the daemon's database.
func TestToastEndToEnd(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	yes := true
	ch, err := d.Client.Open(context.Background(), "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	body := (&mpns.Toast{Text1: "Hello", Text2: "World"}).XML()
	req, _ := http.NewRequest(http.MethodPost, ch.URI, bytes.NewReader(body))
	req.Header.Set(mpns.HeaderTarget, "toast")
	req.Header.Set(mpns.HeaderNotificationClass, "2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(mpns.HeaderNotificationStatus) != mpns.StatusReceived {
		t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get(mpns.HeaderNotificationStatus))
	}
	testenv.Eventually(t, 5e9, "toast recorded", func() bool {
		toasts, err := d.Client.Toasts(context.Background(), "demo")
		return err == nil && len(toasts) == 1 && toasts[0].Text1 == "Hello" && toasts[0].ShownBy == "shell"
	})
}
