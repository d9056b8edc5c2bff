package daemon_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"testing"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// TestStartScreenAddress: the start screen's address, with its key, goes
// over the socket to the daemon's own user only; another user of a shared
// socket is refused it, and a daemon without a start screen says how to
// get one.
func TestStartScreenAddress(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	us := &users{}
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), PeerCred: us.cred})
	ctx := context.Background()
	var ae *app.Error
	if _, err := d.Client.StartScreen(ctx); !errors.As(err, &ae) || ae.Code != app.CodeNotFound {
		t.Fatalf("without --ui: %v, want NotFound", err)
	}
	const addr = "http://127.0.0.1:8791/#key=abc"
	d.SetStartScreen(addr)
	if got, err := d.Client.StartScreen(ctx); err != nil || got != addr {
		t.Fatalf("the daemon's user: %q %v, want %s", got, err, addr)
	}
	other := newUser(t, us, d.Socket, uint32(os.Geteuid())+60001)
	status, _, body := other.do(t, "GET", "/v1/ui", "")
	var e app.ErrorResponse
	json.Unmarshal(body, &e)
	if status != http.StatusForbidden || e.Code != app.CodeUnauthorizedAccess {
		t.Fatalf("another user: %d %s, want 403 UnauthorizedAccess", status, body)
	}
	t.Logf("another user asking for the start screen's address: %d %s", status, e.Code)
}
