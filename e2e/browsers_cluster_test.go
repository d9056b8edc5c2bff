package e2e

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// wsBrowser speaks Firefox's push protocol to one node of a cluster.
type wsBrowser struct {
	conn *websocket.Conn
	uaid string
	// dialer, if set, dials instead of gorilla's default (to trust a
	// test CA).
	dialer *websocket.Dialer
}

type browserFrame struct {
	MessageType  string            `json:"messageType,omitempty"`
	UAID         string            `json:"uaid,omitempty"`
	Status       int               `json:"status,omitempty"`
	UseWebPush   bool              `json:"use_webpush,omitempty"`
	ChannelID    string            `json:"channelID,omitempty"`
	PushEndpoint string            `json:"pushEndpoint,omitempty"`
	Version      string            `json:"version,omitempty"`
	Data         string            `json:"data,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
	Updates      []map[string]any  `json:"updates,omitempty"`
}

func (b *wsBrowser) send(t *testing.T, f browserFrame) {
	t.Helper()
	data, _ := json.Marshal(f)
	if err := b.conn.WriteMessage(websocket.TextMessage, data); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func (b *wsBrowser) next(t *testing.T) browserFrame {
	t.Helper()
	b.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := b.conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f browserFrame
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return f
}

// connect says hello to svc with the browser's uaid (none the first time).
func (b *wsBrowser) connect(t *testing.T, svc *server.Service) {
	t.Helper()
	dialer := websocket.DefaultDialer
	if b.dialer != nil {
		dialer = b.dialer
	}
	conn, _, err := dialer.Dial("ws"+strings.TrimPrefix(svc.URL(), "http")+server.BrowserPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	b.conn = conn
	b.send(t, browserFrame{MessageType: "hello", UseWebPush: true, UAID: b.uaid})
	r := b.next(t)
	if r.MessageType != "hello" || r.Status != 200 || (b.uaid != "" && r.UAID != b.uaid) {
		t.Fatalf("hello answered %+v", r)
	}
	b.uaid = r.UAID
}

// expect reads notifications until one carries body. Before it may come
// again, under its version, one acknowledged on a node that has not yet
// stored the ack (acks are written lazily): Firefox recognises the
// version and acks it again, and so does this browser.
func (b *wsBrowser) expect(t *testing.T, body string, acked ...browserFrame) browserFrame {
	t.Helper()
	for {
		f := b.next(t)
		d, _ := base64.RawURLEncoding.DecodeString(f.Data)
		if f.MessageType == "notification" && string(d) == body {
			return f
		}
		repeat := false
		for _, a := range acked {
			repeat = repeat || (f.MessageType == "notification" && f.Version == a.Version && f.Data == a.Data)
		}
		if !repeat {
			t.Fatalf("expected a notification of %q, got %+v", body, f)
		}
		b.ack(t, f)
	}
}

func (b *wsBrowser) ack(t *testing.T, f browserFrame) {
	t.Helper()
	b.send(t, browserFrame{MessageType: "ack", Updates: []map[string]any{{"channelID": f.ChannelID, "version": f.Version, "code": 100}}})
}

func webPushTo(t *testing.T, uri, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, uri, strings.NewReader(body))
	req.Header.Set("TTL", "3600")
	req.Header.Set("Content-Encoding", "aes128gcm")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s: %d", uri, res.StatusCode)
	}
}

// A browser is routed across a cluster as a Herald device is: subscribed
// on one node, it gets what is posted to another; saying hello on a third
// with its uaid takes it over there; away, its messages wait in the
// shared store for its return to any node.
func TestClusterBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	a, b, c := clusterNode(t, nc, "node-a"), clusterNode(t, nc, "node-b"), clusterNode(t, nc, "node-c")
	br := &wsBrowser{}
	br.connect(t, b)
	const uuid = "5a4e0b8e-2c1f-4b7e-9d51-0c7bd3a1f9e2"
	br.send(t, browserFrame{MessageType: "register", ChannelID: uuid})
	reg := br.next(t)
	if reg.Status != 200 || reg.PushEndpoint == "" {
		t.Fatalf("register answered %+v", reg)
	}
	webPushTo(t, on(a, reg.PushEndpoint), "posted to A, browser on B")
	m1 := br.expect(t, "posted to A, browser on B")
	br.ack(t, m1)

	onB := br.conn
	br.connect(t, c)
	onB.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := onB.ReadMessage()
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			if ce.Code != wire.CloseReplaced {
				t.Fatalf("B's connection closed with %d, want %d", ce.Code, wire.CloseReplaced)
			}
			break
		}
		if err != nil {
			t.Fatalf("B's connection ended without a close frame: %v", err)
		}
	}
	webPushTo(t, on(a, reg.PushEndpoint), "posted to A, browser on C")
	m2 := br.expect(t, "posted to A, browser on C", m1)
	br.ack(t, m2)
	br.send(t, browserFrame{}) // the keepalive: its answer says the ack was read
	if f := br.next(t); f.MessageType != "" {
		t.Fatalf("keepalive answered %+v", f)
	}

	br.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	br.conn.Close()
	testenv.Eventually(t, 10*time.Second, "C notices the browser left", func() bool { return c.ConnectedCount() == 0 })
	webPushTo(t, on(b, reg.PushEndpoint), "posted to B, browser away")
	br.connect(t, a)
	br.expect(t, "posted to B, browser away", m1, m2)
}
