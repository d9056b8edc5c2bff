// Package testenv starts real Herald parts for tests: a notification service
// on a loopback port with its SQLite database in a temporary directory, and
// device daemons with their own databases and local API sockets.
package testenv

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/server/store/storetest"
)

// Logger returns a logger that writes to the test log when HERALD_TEST_LOG
// is set, and nowhere otherwise.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	if os.Getenv("HERALD_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// SQLiteStore opens the service store at file and runs its committer for
// the test, as server.Service.Run would; it is stopped and closed when the
// test ends.
func SQLiteStore(t testing.TB, file string, opts sqlitestore.Options) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), file, opts)
	if err != nil {
		t.Fatalf("opening the service store: %v", err)
	}
	return storetest.Start(t, s)
}

// Service starts a notification service on 127.0.0.1 with its store in
// cfg.Store, or else a SQLite database heraldsvc.db in dir (a new
// temporary directory when dir is ""). The service runs the store and
// closes it. It is closed when the test ends unless the caller closes it
// first.
func Service(t testing.TB, dir string, cfg server.ServeConfig) *server.Service {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Store == nil {
		st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "heraldsvc.db"), sqlitestore.Options{GroupCommit: true})
		if err != nil {
			t.Fatalf("opening the service store: %v", err)
		}
		cfg.Store = st
	}
	if cfg.Server.Logger == nil {
		cfg.Server.Logger = Logger(t).With("part", "service")
	}
	svc, err := server.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("starting service: %v", err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// Daemon is a running device daemon.
type Daemon struct {
	*daemon.Daemon
	Socket string
	Client *app.Client
	done   chan error
	cancel context.CancelFunc
}

// SocketPath returns a Unix socket path short enough for the OS limit
// (t.TempDir paths can exceed 108 bytes).
func SocketPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "h.sock")
}

// StartDaemon runs a daemon with cfg (DataDir, Socket and Logger default to
// fresh ones) and waits until its link is up. It is stopped when the test
// ends unless the caller stops it first.
func StartDaemon(t testing.TB, cfg daemon.Config) *Daemon {
	t.Helper()
	if cfg.DataDir == "" && cfg.DB == nil {
		cfg.DataDir = t.TempDir()
	}
	if cfg.Socket == "" {
		cfg.Socket = SocketPath(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger(t).With("part", "daemon")
	}
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatalf("starting daemon: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	td := &Daemon{Daemon: d, Socket: cfg.Socket, Client: app.NewClient(cfg.Socket), done: make(chan error, 1), cancel: cancel}
	go func() { td.done <- d.Run(ctx) }()
	t.Cleanup(func() { td.Stop() })
	Eventually(t, 10*time.Second, "daemon link up", func() bool {
		st, err := td.Client.Status(context.Background())
		return err == nil && st.Connected
	})
	return td
}

// Stop stops the daemon and closes its database; it may be called twice.
func (d *Daemon) Stop() {
	d.cancel()
	if d.done != nil {
		<-d.done
		d.done = nil
		d.Daemon.Close()
	}
}

// Eventually polls cond until it holds or the deadline passes. It is for
// waiting on other processes and goroutines over real sockets, never for
// timers: those run on a fake clock.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ErrTimeout is returned by helpers that give up waiting.
var ErrTimeout = errors.New("testenv: timed out")
