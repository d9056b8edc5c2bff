package channel_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/wire"
)

// The hello says the link's heartbeat interval, from which the service
// bounds how long what it writes may stay unacknowledged.
func TestHelloSaysHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		name      string
		heartbeat time.Duration
		want      int
	}{
		{"default", 0, int(channel.DefaultHeartbeat / time.Second)},
		{"configured", 7 * time.Minute, 420},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan *wire.Hello, 1)
			up := websocket.Upgrader{}
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := up.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer ws.Close()
				challenge, _ := wire.Encode(wire.Challenge{Type: wire.TypeChallenge, Version: wire.Version, Nonce: wire.NewNonce()})
				ws.WriteMessage(websocket.TextMessage, challenge)
				ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, data, err := ws.ReadMessage()
				if err != nil {
					got <- nil
					return
				}
				f, err := wire.DecodeDevice(data)
				h, _ := f.(*wire.Hello)
				if err != nil {
					h = nil
				}
				got <- h
			}))
			defer hs.Close()

			l, err := channel.New(channel.Config{Service: hs.URL, Handler: &recorder{}, Clock: clock.NewFake(time.Unix(1e9, 0)),
				Heartbeat: tc.heartbeat, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- l.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("Run: %v", err)
				}
			}()
			select {
			case h := <-got:
				if h == nil {
					t.Fatal("no valid hello")
				}
				if h.Heartbeat != tc.want {
					t.Fatalf("hello says heartbeat %d, want %d", h.Heartbeat, tc.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("no hello")
			}
		})
	}
}
