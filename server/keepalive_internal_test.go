//go:build unix

package server

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/wire"
)

// A device's connection has TCP keepalive off on the service's side
// (the device owns the heartbeat), whether its listener had it off
// already (the Service's, from Listen: nothing to do at the hello) or on
// (Handler served on a listener of its own: the hello turns it off).
func TestDeviceConnectionKeepAliveOff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (*Server, string)
	}{
		{"the Service's listener", func(t *testing.T) (*Server, string) {
			st := openStore(t)
			svc, err := Start(context.Background(), ServeConfig{Listen: "127.0.0.1:0", Store: st, Server: Config{Logger: quiet}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { svc.Close() })
			return svc.Server, svc.URL()
		}},
		{"Handler on a listener with keepalive on", func(t *testing.T) (*Server, string) {
			st := openStore(t)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- st.Run(ctx) }()
			hs := httptest.NewUnstartedServer(nil)
			srv, err := New(Config{Store: st, Logger: quiet, PublicURL: "http://" + hs.Listener.Addr().String()})
			if err != nil {
				t.Fatal(err)
			}
			hs.Config.Handler = srv.Handler()
			hs.Start()
			t.Cleanup(func() {
				hs.CloseClientConnections()
				srv.Close()
				hs.Close()
				cancel()
				<-done
				st.Close()
			})
			return srv, hs.URL
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, base := tc.start(t)
			ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+DevicePath, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			ws.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, _, err := ws.ReadMessage(); err != nil { // the challenge
				t.Fatal(err)
			}
			b, _ := wire.Encode(wire.Hello{Type: wire.TypeHello, Version: wire.Version})
			if err := ws.WriteMessage(websocket.TextMessage, b); err != nil {
				t.Fatal(err)
			}
			_, data, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			f, err := wire.DecodeService(data)
			w, ok := f.(*wire.Welcome)
			if err != nil || !ok {
				t.Fatalf("no welcome: %s", data)
			}
			sess := srv.session(w.ID)
			if sess == nil {
				t.Fatal("no session for the device welcomed")
			}
			raw, err := sess.conn.NetConn().(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var on int
			var serr error
			if err := raw.Control(func(fd uintptr) { on, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) }); err != nil || serr != nil {
				t.Fatal(err, serr)
			}
			if on != 0 {
				t.Fatal("TCP keepalive is on for a device's connection")
			}
		})
	}
}

var quiet = slog.New(slog.DiscardHandler)

func openStore(t *testing.T) *sqlitestore.Store {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	return st
}
