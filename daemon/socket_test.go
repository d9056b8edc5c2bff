//go:build unix

package daemon_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/server"
)

// TestSocketPermissions checks who may connect to the local API: the
// daemon's user only, or with socket_group that group's members too.
func TestSocketPermissions(t *testing.T) {
	// Root may hand the socket to any group; others only to their own.
	otherGID := os.Getgid()
	if os.Geteuid() == 0 {
		otherGID = 4242
	}
	tests := []struct {
		name     string
		group    string
		wantMode os.FileMode
		wantGID  int
	}{
		{"owner only", "", 0o600, os.Getgid()},
		{"group", strconv.Itoa(otherGID), 0o660, otherGID},
	}
	svc := testenv.Service(t, "", server.ServeConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), SocketGroup: tt.group})
			fi, err := os.Stat(d.Socket)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != tt.wantMode {
				t.Errorf("socket mode %v, want socket %v", fi.Mode(), tt.wantMode)
			}
			if gid := int(fi.Sys().(*syscall.Stat_t).Gid); gid != tt.wantGID {
				t.Errorf("socket group %d, want %d", gid, tt.wantGID)
			}
		})
	}

	t.Run("unknown group", func(t *testing.T) {
		d, err := daemon.New(daemon.Config{Service: svc.URL(), DataDir: t.TempDir(), Socket: testenv.SocketPath(t),
			SocketGroup: "herald-no-such-group", Logger: testenv.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := d.Run(context.Background()); !errors.Is(err, platform.ErrUnknownGroup) {
			t.Errorf("Run = %v, want %v", err, platform.ErrUnknownGroup)
		}
	})
}

// TestSocketRefusesDevice: a request for an emulated phone, made to a
// daemon that is one phone, is refused instead of answered as that phone.
func TestSocketRefusesDevice(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ctx := context.Background()
	if _, err := app.NewClient(d.Socket).Channels(ctx, ""); err != nil {
		t.Fatalf("without a device: %v", err)
	}
	_, err := app.NewClient(d.Socket).WithDevice("phone-0042").Channels(ctx, "")
	var ae *app.Error
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != app.CodeBadRequest ||
		!strings.Contains(ae.Message, `"phone-0042"`) || !strings.Contains(ae.Message, "single phone") {
		t.Fatalf("with --device: %v, want 400 BadRequest naming the device", err)
	}
	// ?device= is the query form of the same header.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.Socket)
	}}}
	resp, err := hc.Get("http://herald/v1/status?device=phone-0001")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("?device=: %d, want 400", resp.StatusCode)
	}
}
