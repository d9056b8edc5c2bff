package channel_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/wire"
)

// recorder is a Handler that records what the link applies.
type recorder struct {
	mu      sync.Mutex
	applied []wire.Notification
}

func (r *recorder) Session(context.Context) (channel.Identity, uint64, string, error) {
	return channel.Identity{}, 0, "normal", nil
}
func (r *recorder) Enrolled(context.Context, channel.Identity) error { return nil }
func (r *recorder) Rejected(context.Context) error                   { return nil }
func (r *recorder) Apply(_ context.Context, ns []wire.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, ns...)
	return nil
}
func (r *recorder) URIChanged(string, string) {}
func (r *recorder) Expired(string)            {}
func (r *recorder) StatusChanged(bool)        {}

// TestLinkRefusesBadFrames plays a service that sends the device one frame
// after the welcome. A frame the device must not accept ends the
// connection without anything being applied; a good one is applied and
// acknowledged, which shows the harness can tell the two apart.
func TestLinkRefusesBadFrames(t *testing.T) {
	tests := []struct {
		name   string
		typ    int
		frame  string
		accept bool
	}{
		{"valid notify", websocket.TextMessage, `{"type":"notify","notifications":[{"seq":1,"channel_id":"c","kind":"raw","class":3,"body":"eA=="}]}`, true},
		{"binary frame", websocket.BinaryMessage, `{"type":"notify","notifications":[{"seq":1,"channel_id":"c","kind":"raw","class":3,"body":"eA=="}]}`, false},
		{"not JSON", websocket.TextMessage, `{"type":"notify",`, false},
		{"unknown type", websocket.TextMessage, `{"type":"hello","version":1}`, false},
		{"sequence not ascending", websocket.TextMessage, `{"type":"notify","notifications":[{"seq":2,"kind":"raw","body":"eA=="},{"seq":1,"kind":"raw","body":"eA=="}]}`, false},
		{"unknown kind", websocket.TextMessage, `{"type":"notify","notifications":[{"seq":1,"kind":"badge","body":"eA=="}]}`, false},
		{"body not base64", websocket.TextMessage, `{"type":"notify","notifications":[{"seq":1,"kind":"raw","body":"!!"}]}`, false},
		{"second welcome", websocket.TextMessage, `{"type":"welcome","id":"other"}`, false},
		{"challenge in session", websocket.TextMessage, `{"type":"challenge","version":2,"nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`, false},
		{"refused in session", websocket.TextMessage, `{"type":"refused","reason":"retired","proof":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`, false},
		{"over the read limit", websocket.TextMessage, `{"type":"uri","channel_id":"c","uri":"` + strings.Repeat("u", wire.MaxFrameSize) + `"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan string, 1)
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
				if _, _, err := ws.ReadMessage(); err != nil { // hello
					got <- "no hello: " + err.Error()
					return
				}
				welcome, _ := wire.Encode(wire.Welcome{Type: wire.TypeWelcome, ID: "dev", Secret: "s", MinHeartbeat: 60, MaxIdle: 3600})
				ws.WriteMessage(websocket.TextMessage, welcome)
				ws.WriteMessage(tt.typ, []byte(tt.frame))
				_, data, err := ws.ReadMessage()
				switch {
				case err == nil:
					got <- string(data)
				default:
					got <- "dropped"
				}
			}))
			defer hs.Close()

			h := &recorder{}
			l, err := channel.New(channel.Config{Service: hs.URL, Handler: h, Clock: clock.NewFake(time.Unix(1e9, 0)),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
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

			var answer string
			select {
			case answer = <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("the service heard nothing back")
			}
			h.mu.Lock()
			applied := len(h.applied)
			h.mu.Unlock()
			if tt.accept {
				if answer != `{"type":"ack","seq":1}` || applied != 1 {
					t.Fatalf("good frame: service got %q, %d applied", answer, applied)
				}
				return
			}
			if answer != "dropped" || applied != 0 {
				t.Fatalf("bad frame: service got %q, %d applied; want the connection dropped and nothing applied", answer, applied)
			}
		})
	}
}
