//go:build linux || darwin || freebsd

package emulator_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/emulator"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// One socket serves every phone, and each phone binds its app ids to users
// on its own: a user refused an app id on one phone may still use it on
// another.
func TestOwnersPerPhone(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	// The user of the next connection; requests go one at a time over
	// fresh connections, so each is named before it is accepted.
	var caller atomic.Uint32
	caller.Store(uint32(os.Geteuid()) + 60001)
	cred := func(c net.Conn) (uint32, error) {
		if _, err := daemon.SocketPeerUID(c); err != nil {
			return 0, err
		}
		return caller.Load(), nil
	}
	emu, err := emulator.New(context.Background(), emulator.Config{Devices: 2, Service: svc.URL(), PeerCred: cred,
		DB: filepath.Join(t.TempDir(), "emulator.db"), Logger: testenv.Logger(t),
		Clock: clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- emu.Run(ctx) }()
	sock := testenv.SocketPath(t)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- emu.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-served
		<-done
		emu.Close()
	})
	testenv.Eventually(t, 20*time.Second, "every phone connected", func() bool { return emu.Connected() == 2 })

	open := func(uid uint32, phone string) error {
		caller.Store(uid)
		// A new client is a new connection, so the daemon reads its
		// user afresh.
		_, err := app.NewClient(sock).WithDevice(phone).Open(ctx, "demo", app.OpenRequest{})
		return err
	}
	alice, bob := uint32(os.Geteuid())+60001, uint32(os.Geteuid())+60002
	var refused *app.Error
	for _, s := range []struct {
		uid    uint32
		phone  string
		denied bool
	}{
		{alice, "phone-0001", false},
		{bob, "phone-0001", true},
		{bob, "phone-0002", false},
		{alice, "phone-0002", true},
		{alice, "phone-0001", false},
	} {
		err := open(s.uid, s.phone)
		if s.denied != (errors.As(err, &refused) && refused.Status == http.StatusForbidden && refused.Code == app.CodeUnauthorizedAccess) || (!s.denied && err != nil) {
			t.Fatalf("user %d opens demo on %s: %v (want denied=%v)", s.uid, s.phone, err, s.denied)
		}
	}
}
