package app_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/app"
)

// A daemon that has accepted an app's event stream counts the app running
// before it sends the first event. An app stopped (its ctx ended) while
// Listen still waits for that event must close the stream with a close
// frame, as an app that stops does: a cut connection is a crash to the
// daemon, which keeps the app "running" for its grace period.
func TestListenCancelledBeforeFirstEventClosesCleanly(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	ended := make(chan error, 1)
	up := websocket.Upgrader{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		close(accepted)
		// No event: the app is still waiting for its first one. The read
		// answers the app's close frame and ends with it.
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				ended <- err
				return
			}
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listened := make(chan error, 1)
	go func() {
		_, err := app.NewClient(socket).Listen(ctx, "demo", app.ListenOptions{Reconnect: true})
		listened <- err
	}()
	select {
	case <-accepted:
	case <-time.After(30 * time.Second):
		t.Fatal("the stream never reached the daemon")
	}
	cancel()
	select {
	case err := <-listened:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Listen: %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Listen did not return once its context ended")
	}
	select {
	case err := <-ended:
		if !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
			t.Fatalf("the daemon saw the stream end with %v, want a close frame (1000)", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon's read never ended")
	}
}
