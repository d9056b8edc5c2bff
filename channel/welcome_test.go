package channel_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/wire"
)

// TestWelcomeBounds plays a service whose welcome announces odd
// min_heartbeat and max_idle values: the heartbeat's ceiling follows a
// sane max_idle, and an absurd one neither overflows into the floor nor
// is taken for a limit.
func TestWelcomeBounds(t *testing.T) {
	tests := []struct {
		name          string
		minHB, maxIdl int
		ceiling       time.Duration
		heartbeat     time.Duration
	}{
		{"defaults", 60, 14400, channel.DefaultHeartbeatCeiling, channel.DefaultHeartbeat},
		{"an hour's max_idle", 60, 3600, 54 * time.Minute, channel.DefaultHeartbeat},
		{"no max_idle", 60, 0, channel.DefaultHeartbeatCeiling, channel.DefaultHeartbeat},
		{"negative max_idle", 60, -5, channel.DefaultHeartbeatCeiling, channel.DefaultHeartbeat},
		{"overflowing max_idle", 60, 1 << 62, channel.DefaultHeartbeatCeiling, channel.DefaultHeartbeat},
		{"a second's max_idle", 60, 1, channel.DefaultHeartbeatFloor, channel.DefaultHeartbeatFloor},
		{"overflowing min_heartbeat", 1 << 62, 14400, channel.DefaultHeartbeatCeiling, channel.DefaultHeartbeatCeiling},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := websocket.Upgrader{}
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := up.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer ws.Close()
				challenge, _ := wire.Encode(wire.Challenge{Type: wire.TypeChallenge, Version: wire.Version, Nonce: wire.NewNonce()})
				ws.WriteMessage(websocket.TextMessage, challenge)
				if _, _, err := ws.ReadMessage(); err != nil { // hello
					return
				}
				welcome, _ := wire.Encode(wire.Welcome{Type: wire.TypeWelcome, ID: "dev", Secret: "s", MinHeartbeat: tt.minHB, MaxIdle: tt.maxIdl})
				ws.WriteMessage(websocket.TextMessage, welcome)
				ws.ReadMessage() // until the link goes
			}))
			defer hs.Close()
			l, err := channel.New(channel.Config{Service: hs.URL, Handler: &recorder{}, Clock: clock.NewFake(time.Unix(1e9, 0)),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); l.Run(ctx) }()
			defer func() { cancel(); <-done }()
			testenv.Eventually(t, 10*time.Second, "connected", l.Connected)
			if st := l.Stats(); st.Ceiling != tt.ceiling || st.Heartbeat != tt.heartbeat {
				t.Fatalf("ceiling %v, heartbeat %v; want %v, %v", st.Ceiling, st.Heartbeat, tt.ceiling, tt.heartbeat)
			}
		})
	}
}
