package channel_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/internal/protodoc"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/wire"
)

// TestDeviceFollowsProtocolPage runs the real device end against a
// service written from docs/protocol.md alone: it sends the page's
// challenge nonce, checks the device's hello proof by the page's
// construction (the standard library, not wire's code) with the page's
// secret and id, and answers with a welcome, or a refused frame, proven
// the same way. The device takes the welcome, and forgets its identity on
// the refusal, even over plain http where only the proof can convince it.
func TestDeviceFollowsProtocolPage(t *testing.T) {
	v, _, err := protodoc.Read("../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	id := channel.Identity{ID: v["id"], Secret: v["secret"]}
	key := protodoc.Key(id.Secret)
	sn := v["challenge_nonce"]
	for _, refuse := range []bool{false, true} {
		name := "welcome"
		if refuse {
			name = "refused"
		}
		t.Run(name, func(t *testing.T) {
			var mu sync.Mutex
			var checked, bad []string
			up := websocket.Upgrader{}
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				ws, err := up.Upgrade(w, r, nil)
				if err != nil {
					return
				}
				defer ws.Close()
				ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"challenge","version":2,"nonce":"`+sn+`"}`))
				ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, data, err := ws.ReadMessage()
				if err != nil {
					return
				}
				var h struct {
					Type    string `json:"type"`
					Version int    `json:"version"`
					ID      string `json:"id"`
					Nonce   string `json:"nonce"`
					Proof   string `json:"proof"`
				}
				json.Unmarshal(data, &h)
				if refuse && h.ID == "" {
					return // enrolling anew once it forgot its identity
				}
				mu.Lock()
				if h.Type != "hello" || h.Version != 2 || h.ID != id.ID || len(h.Nonce) != 43 ||
					h.Proof != protodoc.Proof(key, protodoc.Message(protodoc.LabelHello, sn, h.Nonce, id.ID)) {
					bad = append(bad, string(data))
				} else {
					checked = append(checked, string(data))
				}
				mu.Unlock()
				if refuse {
					proof := protodoc.Proof(key, protodoc.Message(protodoc.LabelRefused, sn, h.Nonce, id.ID, "retired"))
					ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"refused","reason":"retired","proof":"`+proof+`"}`))
					ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(wire.CloseUnauthorized, "retired"), time.Now().Add(time.Second))
					return
				}
				proof := protodoc.Proof(key, protodoc.Message(protodoc.LabelWelcome, sn, h.Nonce, id.ID))
				ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"welcome","id":"`+id.ID+`","proof":"`+proof+`","min_heartbeat":60,"max_idle":3600}`))
				for {
					if _, _, err := ws.ReadMessage(); err != nil {
						return // the device hung up
					}
				}
			}))
			defer hs.Close()
			h := newMemHandler("fake")
			h.id = id
			l := runLink(t, channel.Config{Service: hs.URL, Handler: h})
			if refuse {
				testenv.Eventually(t, testTimeout, "identity forgotten", func() bool { return h.identity() == channel.Identity{} })
			} else {
				testenv.Eventually(t, testTimeout, "link up", func() bool { return l.Stats().Connected })
			}
			mu.Lock()
			defer mu.Unlock()
			if len(bad) != 0 || len(checked) == 0 {
				t.Fatalf("hellos that do not follow the page: %q (and %d that do)", bad, len(checked))
			}
		})
	}
}
