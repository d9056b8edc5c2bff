package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"
	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// testBrowser speaks Firefox's push protocol (PushServiceWebSocket) to the
// service over a real websocket, frame by frame.
type testBrowser struct {
	t    testing.TB
	ts   *testService
	conn *websocket.Conn
	uaid string
}

// browserMsg is any frame of the protocol, either way.
type browserMsg struct {
	MessageType  string            `json:"messageType,omitempty"`
	UAID         string            `json:"uaid,omitempty"`
	Status       int               `json:"status,omitempty"`
	UseWebPush   bool              `json:"use_webpush,omitempty"`
	Broadcasts   json.RawMessage   `json:"broadcasts,omitempty"`
	ChannelID    string            `json:"channelID,omitempty"`
	Key          string            `json:"key,omitempty"`
	PushEndpoint string            `json:"pushEndpoint,omitempty"`
	Version      string            `json:"version,omitempty"`
	Data         string            `json:"data,omitempty"`
	Headers      map[string]string `json:"headers,omitempty"`
	Updates      []browserUpdate   `json:"updates,omitempty"`
	Code         int               `json:"code,omitempty"`
}

type browserUpdate struct {
	ChannelID string `json:"channelID"`
	Version   string `json:"version"`
	Code      int    `json:"code"`
}

func (ts *testService) dialBrowser() *websocket.Conn {
	ts.t.Helper()
	url := "ws" + strings.TrimPrefix(ts.http.URL, "http") + server.BrowserPath
	d := websocket.Dialer{Subprotocols: []string{"push-notification"}}
	conn, res, err := d.Dial(url, nil)
	if err != nil {
		ts.t.Fatalf("dial: %v", err)
	}
	if p := res.Header.Get("Sec-WebSocket-Protocol"); p != "push-notification" {
		ts.t.Errorf("subprotocol %q", p)
	}
	ts.t.Cleanup(func() { conn.Close() })
	return conn
}

// browser connects a browser saying hello with uaid ("" for a new one),
// as Firefox does.
func (ts *testService) browser(uaid string) *testBrowser {
	ts.t.Helper()
	b := &testBrowser{t: ts.t, ts: ts, conn: ts.dialBrowser()}
	hello := browserMsg{MessageType: "hello", UseWebPush: true, Broadcasts: json.RawMessage("{}"), UAID: uaid}
	b.send(hello)
	r := b.next()
	if r.MessageType != "hello" || r.Status != 200 || !r.UseWebPush || r.UAID == "" || len(r.UAID) > 128 {
		b.t.Fatalf("hello answered %+v", r)
	}
	b.uaid = r.UAID
	return b
}

func (b *testBrowser) send(v any) {
	b.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := b.conn.WriteMessage(websocket.TextMessage, data); err != nil {
		b.t.Fatalf("write: %v", err)
	}
}

func (b *testBrowser) next() browserMsg {
	b.t.Helper()
	b.conn.SetReadDeadline(time.Now().Add(frameWait))
	_, data, err := b.conn.ReadMessage()
	if err != nil {
		b.t.Fatalf("read: %v", err)
	}
	var m browserMsg
	if err := json.Unmarshal(data, &m); err != nil {
		b.t.Fatalf("decode %s: %v", data, err)
	}
	return m
}

// subscribe registers a subscription, with key (base64url with = padding,
// as Firefox sends it) or none, and returns its pushEndpoint.
func (b *testBrowser) subscribe(channelID, key string) string {
	b.t.Helper()
	b.send(browserMsg{MessageType: "register", ChannelID: channelID, Key: key})
	r := b.next()
	if r.MessageType != "register" || r.ChannelID != channelID || r.Status != 200 || r.PushEndpoint == "" {
		b.t.Fatalf("register answered %+v", r)
	}
	return r.PushEndpoint
}

// notification reads the next frame, which must be a notification.
func (b *testBrowser) notification() browserMsg {
	b.t.Helper()
	m := b.next()
	if m.MessageType != "notification" || m.Version == "" || m.Headers["encoding"] != "aes128gcm" {
		b.t.Fatalf("expected a notification, got %+v", m)
	}
	return m
}

func (b *testBrowser) ack(ms ...browserMsg) {
	b.t.Helper()
	a := browserMsg{MessageType: "ack"}
	for _, m := range ms {
		a.Updates = append(a.Updates, browserUpdate{ChannelID: m.ChannelID, Version: m.Version, Code: 100})
	}
	b.send(a)
}

// ping sends Firefox's keepalive and waits for its answer: every frame
// the browser sent before it has been handled.
func (b *testBrowser) ping() {
	b.t.Helper()
	b.send(struct{}{})
	if m := b.next(); m.MessageType != "" {
		b.t.Fatalf("keepalive answered %+v", m)
	}
}

func (b *testBrowser) hangUp() {
	b.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	b.conn.Close()
}

// queued is the number of messages the service holds for every device.
func (ts *testService) queued() int64 {
	ts.t.Helper()
	n, err := ts.store.QueueLength(context.Background())
	if err != nil {
		ts.t.Fatal(err)
	}
	return n
}

// padded spells a VAPID public key as Firefox sends it: base64url with =
// padding.
func padded(key string) string {
	raw, _ := base64.RawURLEncoding.DecodeString(key)
	return base64.URLEncoding.EncodeToString(raw)
}

// send posts a message with webpush-go, as an application server does.
func sendWebPush(t *testing.T, ts *testService, sub *testenv.Subscriber, endpoint, priv, pub, plain string) *http.Response {
	t.Helper()
	res, err := webpushgo.SendNotification([]byte(plain), webpushSubscription(sub, endpoint), &webpushgo.Options{
		Subscriber: "mailto:ops@example.org", VAPIDPublicKey: pub, VAPIDPrivateKey: priv, TTL: 3600,
		VapidExpiration: ts.clk.Now().Add(12 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

const (
	chanA = "5a4e0b8e-2c1f-4b7e-9d51-0c7bd3a1f9e2"
	chanB = "0f8fad5b-d9cb-469f-a165-70867728950e"
)

// A browser subscribes with an application server's key (padded, as
// Firefox sends it); a VAPID-signed aes128gcm message posted to its
// pushEndpoint arrives as a notification with the subscription's
// channelID, a version, the ciphertext in base64url and the encoding
// header, and decrypts to what was sent; its ack empties the queue.
func TestBrowserSubscribeAndReceive(t *testing.T) {
	ts := startService(t, server.Config{})
	ts.clk.Set(time.Now().Truncate(time.Millisecond)) // webpush-go signs against the real clock
	b := ts.browser("")
	priv, pub, _ := vapidKeys(t)
	endpoint := b.subscribe(chanA, padded(pub))
	if again := b.subscribe(chanA, padded(pub)); again != endpoint {
		t.Fatalf("registering again gave %s, then %s", endpoint, again)
	}
	sub := testenv.NewSubscriber(t)
	res := sendWebPush(t, ts, sub, endpoint, priv, pub, "hello, service worker")
	if res.StatusCode != http.StatusCreated || !strings.HasPrefix(res.Header.Get("Location"), endpoint+server.MessagesSegment) {
		t.Fatalf("answer %d %v", res.StatusCode, res.Header)
	}
	m := b.notification()
	if m.ChannelID != chanA {
		t.Fatalf("channelID %q, want %q", m.ChannelID, chanA)
	}
	body, err := base64.RawURLEncoding.DecodeString(m.Data)
	if err != nil {
		t.Fatalf("data is not unpadded base64url: %v", err)
	}
	if got, err := sub.Decrypt(body); err != nil || string(got) != "hello, service worker" {
		t.Fatalf("decrypted %q, %v", got, err)
	}
	b.ack(m)
	testenv.Eventually(t, frameWait, "the ack empties the queue", func() bool { return ts.queued() == 0 })

	// Unsigned, or signed by another key: refused as for any restricted
	// channel.
	if r := wpPost(t, endpoint, wpHeader("TTL", "60"), bytes.Repeat([]byte{1}, 100)); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned post to a restricted subscription: %d", r.StatusCode)
	}
	priv2, pub2, _ := vapidKeys(t)
	if r := sendWebPush(t, ts, sub, endpoint, priv2, pub2, "x"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("post signed by another key: %d", r.StatusCode)
	}
}

// A browser away gets what was sent meanwhile when it says hello again
// with its uaid, which it gets back unchanged. A message acknowledged
// after one that was not stays queued with it and both come again, under
// the same versions, so the browser recognises them; once every one is
// acknowledged nothing comes again.
func TestBrowserOfflineAndResend(t *testing.T) {
	ts := startService(t, server.Config{})
	b := ts.browser("")
	uaid := b.uaid
	endpoint := b.subscribe(chanA, "")
	b.hangUp()
	testenv.Eventually(t, frameWait, "the session ended", func() bool { return ts.srv.ConnectedCount() == 0 })
	for _, body := range []string{"first", "second"} {
		if r := wpPost(t, endpoint, wpHeader("TTL", "3600"), []byte(body)); r.StatusCode != http.StatusCreated {
			t.Fatalf("post while away: %d", r.StatusCode)
		}
	}

	b = ts.browser(uaid)
	if b.uaid != uaid {
		t.Fatalf("hello with uaid %q answered with %q", uaid, b.uaid)
	}
	m1, m2 := b.notification(), b.notification()
	if d1, _ := base64.RawURLEncoding.DecodeString(m1.Data); string(d1) != "first" {
		t.Fatalf("first message %q", d1)
	}
	if d2, _ := base64.RawURLEncoding.DecodeString(m2.Data); string(d2) != "second" || m1.Version == m2.Version {
		t.Fatalf("second message %q, versions %s %s", d2, m1.Version, m2.Version)
	}
	b.ack(m2) // out of order: the first is not acknowledged
	b.ping()
	b.hangUp()
	testenv.Eventually(t, frameWait, "the session ended", func() bool { return ts.srv.ConnectedCount() == 0 })

	b = ts.browser(uaid)
	r1, r2 := b.notification(), b.notification()
	if r1.Version != m1.Version || r2.Version != m2.Version {
		t.Fatalf("resent as versions %s %s; first sent as %s %s", r1.Version, r2.Version, m1.Version, m2.Version)
	}
	b.ack(r1)
	b.ack(r2)
	testenv.Eventually(t, frameWait, "the acks empty the queue", func() bool { return ts.queued() == 0 })
	b.hangUp()
	testenv.Eventually(t, frameWait, "the session ended", func() bool { return ts.srv.ConnectedCount() == 0 })
	b = ts.browser(uaid)
	b.ping() // nothing before the keepalive's answer
	b.send(browserMsg{MessageType: "unregister", ChannelID: chanA})
	if r := b.next(); r.MessageType != "unregister" || r.Status != 200 {
		t.Fatalf("unregister answered %+v", r)
	}
	if r := wpPost(t, endpoint, wpHeader("TTL", "60"), []byte("x")); r.StatusCode != http.StatusNotFound {
		t.Fatalf("post to an unregistered subscription: %d", r.StatusCode)
	}
}

// A uaid the service does not know gets a new one (Firefox then drops its
// subscriptions); a browser's pushEndpoint takes Web Push in aes128gcm
// only, never MPNS.
func TestBrowserUnknownUAIDAndForeignPosts(t *testing.T) {
	ts := startService(t, server.Config{})
	b := ts.browser("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if b.uaid == "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" {
		t.Fatal("an unknown uaid was taken")
	}
	if n := len(b.uaid); n < 22 {
		t.Fatalf("uaid of %d characters is too short to be unguessable", n)
	}
	endpoint := b.subscribe(chanA, "")
	a := postMPNS(t, http.DefaultClient, http.MethodPost, endpoint, rawHeaders(), "raw")
	if a.code != http.StatusForbidden {
		t.Fatalf("MPNS raw to a browser: %d %s", a.code, a.body)
	}
	h := wpHeader("TTL", "60")
	h.Set("Content-Encoding", "aesgcm")
	if r := wpPost(t, endpoint, h, []byte("x")); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("aesgcm to a browser: %d", r.StatusCode)
	}
	if ts.queued() != 0 {
		t.Fatal("a refused post was queued")
	}
}

// closeCodeOf reads until the service closes and returns its close code.
func closeCodeOf(t *testing.T, conn *websocket.Conn) int {
	t.Helper()
	for {
		conn.SetReadDeadline(time.Now().Add(frameWait))
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Fatalf("connection ended without a close frame: %v", err)
	}
}

// What a hostile client may send: each ends only its own connection, with
// a close code that says why.
func TestBrowserHostileFrames(t *testing.T) {
	ts := startService(t, server.Config{})
	for _, tc := range []struct {
		name   string
		hello  bool // say hello first
		frame  []byte
		closes int
	}{
		{"no hello first", false, []byte(`{"messageType":"register","channelID":"` + chanA + `"}`), wire.CloseProtocol},
		{"hello without use_webpush", false, []byte(`{"messageType":"hello"}`), wire.CloseProtocol},
		{"not JSON", false, []byte(`hello`), wire.CloseProtocol},
		{"uaid too long", false, []byte(`{"messageType":"hello","use_webpush":true,"uaid":"` + strings.Repeat("a", 129) + `"}`), wire.CloseProtocol},
		{"unknown messageType", true, []byte(`{"messageType":"urgency","min":"high"}`), wire.CloseProtocol},
		{"channelID not a UUID", true, []byte(`{"messageType":"register","channelID":"../../x"}`), wire.CloseProtocol},
		{"ack without updates", true, []byte(`{"messageType":"ack","updates":[]}`), wire.CloseProtocol},
		{"hello twice", true, []byte(`{"messageType":"hello","use_webpush":true}`), wire.CloseProtocol},
		{"oversize frame", true, []byte(`{"messageType":"ack","x":"` + strings.Repeat("a", 9<<10) + `"}`), websocket.CloseMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conn *websocket.Conn
			if tc.hello {
				conn = ts.browser("").conn
			} else {
				conn = ts.dialBrowser()
			}
			conn.WriteMessage(websocket.TextMessage, tc.frame)
			if code := closeCodeOf(t, conn); code != tc.closes {
				t.Fatalf("close code %d, want %d", code, tc.closes)
			}
		})
	}
}

// Requests a browser may make but that are refused, answered with a
// status while the connection lives on: a register flood past the
// subscriptions a browser may hold, another key for a subscription, a
// key that is not a P-256 point; acks for versions never sent change
// nothing.
func TestBrowserRefusedRequests(t *testing.T) {
	ts := startService(t, server.Config{MaxChannelsPerDevice: 3})
	b := ts.browser("")
	_, pub, _ := vapidKeys(t)
	endpoint := b.subscribe(chanA, pub)
	for _, tc := range []struct {
		name      string
		channelID string
		key       string
		status    int
	}{
		{"another key for a subscription", chanA, "", http.StatusConflict},
		{"not a key", chanB, "AAAA", http.StatusBadRequest},
	} {
		b.send(browserMsg{MessageType: "register", ChannelID: tc.channelID, Key: tc.key})
		if r := b.next(); r.Status != tc.status || r.PushEndpoint != "" {
			t.Errorf("%s: answered %+v, want status %d", tc.name, r, tc.status)
		}
	}
	b.subscribe("00000000-0000-4000-8000-000000000001", "")
	b.subscribe("00000000-0000-4000-8000-000000000002", "")
	b.send(browserMsg{MessageType: "register", ChannelID: "00000000-0000-4000-8000-000000000003"})
	if r := b.next(); r.Status != http.StatusTooManyRequests {
		t.Fatalf("a fourth subscription of three allowed: %+v", r)
	}

	// A message queued, then acks of versions never sent, or not numbers:
	// the message stays queued.
	if r := wpPost(t, endpoint, wpHeader("TTL", "60"), []byte("x")); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned: %d", r.StatusCode)
	}
	other := b.subscribe("00000000-0000-4000-8000-000000000002", "")
	if r := wpPost(t, other, wpHeader("TTL", "60"), []byte("x")); r.StatusCode != http.StatusCreated {
		t.Fatalf("post: %d", r.StatusCode)
	}
	m := b.notification()
	for _, v := range []string{"999999", "-1", "abc", "18446744073709551615"} {
		b.send(browserMsg{MessageType: "ack", Updates: []browserUpdate{{ChannelID: m.ChannelID, Version: v, Code: 100}}})
		b.send(browserMsg{MessageType: "nack", Version: v, Code: 301})
	}
	b.ping()
	if ts.queued() != 1 {
		t.Fatalf("%d queued after acks of versions never sent; want 1", ts.queued())
	}
}

// A second connection saying hello with a connected browser's uaid takes
// over, as for Herald devices: the first is closed with 4004 and the
// second gets what is queued.
func TestBrowserTakeover(t *testing.T) {
	ts := startService(t, server.Config{})
	first := ts.browser("")
	endpoint := first.subscribe(chanA, "")
	second := ts.browser(first.uaid)
	if second.uaid != first.uaid {
		t.Fatalf("takeover answered uaid %q", second.uaid)
	}
	if code := closeCodeOf(t, first.conn); code != wire.CloseReplaced {
		t.Fatalf("replaced connection closed with %d", code)
	}
	if r := wpPost(t, endpoint, wpHeader("TTL", "60"), []byte("x")); r.StatusCode != http.StatusCreated {
		t.Fatalf("post: %d", r.StatusCode)
	}
	if m := second.notification(); m.ChannelID != chanA {
		t.Fatalf("notification %+v", m)
	}
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The uaid is a bearer token: no log line carries it, at any level,
// through enrolment, a return, a takeover and a refusal.
func TestBrowserUAIDNeverLogged(t *testing.T) {
	var logs syncBuffer
	ts := startService(t, server.Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	b := ts.browser("")
	endpoint := b.subscribe(chanA, "")
	wpPost(t, endpoint, wpHeader("TTL", "60"), []byte("x"))
	b.ack(b.notification())
	again := ts.browser(b.uaid)
	closeCodeOf(t, b.conn)
	again.send(browserMsg{MessageType: "bogus"})
	closeCodeOf(t, again.conn)
	testenv.Eventually(t, frameWait, "the sessions ended", func() bool { return ts.srv.ConnectedCount() == 0 })
	if !strings.Contains(logs.String(), "browser connected") {
		t.Fatal("no log lines collected")
	}
	if strings.Contains(logs.String(), b.uaid) {
		t.Fatalf("a log line carries the uaid:\n%s", logs.String())
	}
}

// Browser connections that never say hello are bounded as devices' are:
// past the places for one address the upgrade is refused with 503, and a
// browser that says hello gives its place back.
func TestBrowserPendingHellosBounded(t *testing.T) {
	ts := startService(t, server.Config{Limits: server.Limits{MaxPendingHellosPerSource: 2}})
	url := "ws" + strings.TrimPrefix(ts.http.URL, "http") + server.BrowserPath
	silent := []*websocket.Conn{ts.dialBrowser(), ts.dialBrowser()}
	if _, res, err := websocket.DefaultDialer.Dial(url, nil); err == nil || res == nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a third silent connection from one address: %v %v", res, err)
	}
	b := &testBrowser{t: t, ts: ts, conn: silent[0]}
	b.send(browserMsg{MessageType: "hello", UseWebPush: true})
	if r := b.next(); r.Status != 200 {
		t.Fatalf("hello answered %+v", r)
	}
	testenv.Eventually(t, frameWait, "the place given back", func() bool {
		conn, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

// rawFrame reads the next frame as its JSON fields, kept raw, so that a
// test can tell a field sent empty from one not sent at all.
func (b *testBrowser) rawFrame() map[string]json.RawMessage {
	b.t.Helper()
	b.conn.SetReadDeadline(time.Now().Add(frameWait))
	_, data, err := b.conn.ReadMessage()
	if err != nil {
		b.t.Fatalf("read: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		b.t.Fatalf("decode %s: %v", data, err)
	}
	return m
}

// The hellos a browser may send are answered as docs/browsers.md says:
// status 200, use_webpush, broadcasts sent as {} (Firefox's push client
// reads it to know which broadcasts are current), and the uaid kept when
// the service knows it. channelIDs, which a client may send, is ignored:
// the subscriptions the service holds for the uaid are the truth, so one
// not listed still takes messages and one listed is not made by the
// hello.
func TestBrowserHelloVariants(t *testing.T) {
	ts := startService(t, server.Config{})
	known := ts.browser("")
	endpoint := known.subscribe(chanA, "")
	known.hangUp()
	testenv.Eventually(t, frameWait, "the session ended", func() bool { return ts.srv.ConnectedCount() == 0 })
	_, pub, _ := vapidKeys(t)

	for _, tc := range []struct {
		name  string
		hello string
		known bool // the hello carries the known browser's uaid
	}{
		{"new, as Firefox sends it", `{"messageType":"hello","use_webpush":true,"broadcasts":{}}`, false},
		{"new, no broadcasts", `{"messageType":"hello","use_webpush":true}`, false},
		{"new, broadcasts subscribed", `{"messageType":"hello","use_webpush":true,"broadcasts":{"remote-settings/monitor_changes":"\"1\""}}`, false},
		{"new, empty channelIDs", `{"messageType":"hello","use_webpush":true,"channelIDs":[]}`, false},
		{"new, channelIDs the service never saw", `{"messageType":"hello","use_webpush":true,"channelIDs":["` + chanB + `"]}`, false},
		{"known, empty channelIDs", `{"messageType":"hello","use_webpush":true,"broadcasts":{},"channelIDs":[]}`, true},
		{"known, channelIDs without its subscription", `{"messageType":"hello","use_webpush":true,"channelIDs":["` + chanB + `"]}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hello := tc.hello
			if tc.known {
				hello = strings.Replace(hello, `{`, `{"uaid":"`+known.uaid+`",`, 1)
			}
			b := &testBrowser{t: t, ts: ts, conn: ts.dialBrowser()}
			if err := b.conn.WriteMessage(websocket.TextMessage, []byte(hello)); err != nil {
				t.Fatal(err)
			}
			r := b.rawFrame()
			var uaid string
			json.Unmarshal(r["uaid"], &uaid)
			if string(r["messageType"]) != `"hello"` || string(r["status"]) != "200" || string(r["use_webpush"]) != "true" {
				t.Fatalf("hello answered %v", r)
			}
			if got := string(r["broadcasts"]); got != "{}" {
				t.Fatalf("broadcasts answered as %q, want {}", got)
			}
			if tc.known != (uaid == known.uaid) || uaid == "" {
				t.Fatalf("uaid %q answered; known %v", uaid, tc.known)
			}
			if strings.Contains(tc.hello, chanB) {
				// A listed subscription was not made: had it been
				// (keyless), registering it with a key would be a
				// conflict (409).
				b.subscribe(chanB, pub)
			}
			if tc.known {
				// The subscription the hello did not list still takes
				// messages on this connection.
				if res := wpPost(t, endpoint, wpHeader("TTL", "60"), []byte("x")); res.StatusCode != http.StatusCreated {
					t.Fatalf("post: %d", res.StatusCode)
				}
				b.ack(b.notification())
				testenv.Eventually(t, frameWait, "the ack empties the queue", func() bool { return ts.queued() == 0 })
			}
			// One browser at a time, so that the next row's known
			// browser is not a takeover.
			b.hangUp()
			testenv.Eventually(t, frameWait, "the session ended", func() bool { return ts.srv.ConnectedCount() == 0 })
		})
	}
}

// The frames a live browser sends besides acks, answered as
// docs/browsers.md says: {"messageType":"ping"} with {}; a
// broadcast_subscribe with nothing, the connection staying usable; a nack
// of a version the service sent ends that message as an ack would, so it
// is not sent again on the next connection.
func TestBrowserPingBroadcastSubscribeNack(t *testing.T) {
	ts := startService(t, server.Config{})
	b := ts.browser("")
	endpoint := b.subscribe(chanA, "")

	b.send(browserMsg{MessageType: "ping"})
	if r := b.rawFrame(); len(r) != 0 {
		t.Fatalf(`{"messageType":"ping"} answered %v, want {}`, r)
	}

	b.send(json.RawMessage(`{"messageType":"broadcast_subscribe","broadcasts":{"remote-settings/monitor_changes":"\"1\""}}`))
	b.ping() // the keepalive's answer comes first: broadcast_subscribe has none
	if res := wpPost(t, endpoint, wpHeader("TTL", "3600"), []byte("after broadcast_subscribe")); res.StatusCode != http.StatusCreated {
		t.Fatalf("post: %d", res.StatusCode)
	}
	m := b.notification()
	if d, _ := base64.RawURLEncoding.DecodeString(m.Data); string(d) != "after broadcast_subscribe" {
		t.Fatalf("notification after broadcast_subscribe carries %q", d)
	}

	// 301 is what Firefox sends when the service worker's push event
	// failed (PushService's nack codes).
	b.send(browserMsg{MessageType: "nack", ChannelID: m.ChannelID, Version: m.Version, Code: 301})
	b.ping() // a nack has no answer, and the connection lives on
	testenv.Eventually(t, frameWait, "the nack empties the queue", func() bool { return ts.queued() == 0 })
	b.hangUp()
	testenv.Eventually(t, frameWait, "the session ended", func() bool { return ts.srv.ConnectedCount() == 0 })
	b = ts.browser(b.uaid)
	b.ping() // nothing comes before the keepalive's answer: the nacked message is not sent again
}

// A browser's endpoint honours TTL, Topic and Urgency as every channel
// does (docs/browsers.md): while the browser is away a TTL of 0 is
// dropped, a message whose TTL passes is never sent, a second message
// with the same Topic replaces the first, and a very-low urgency is sent,
// since Firefox declares no minimum. On its return the browser gets
// exactly the replacing message and the very-low one, in order.
func TestBrowserTTLTopicUrgency(t *testing.T) {
	ts := startService(t, server.Config{Limits: server.Limits{SenderRate: -1, ChannelRate: -1, DailyQuota: -1}})
	b := ts.browser("")
	uaid := b.uaid
	endpoint := b.subscribe(chanA, "")
	b.hangUp()
	testenv.Eventually(t, frameWait, "the session ended", func() bool { return ts.srv.ConnectedCount() == 0 })

	for _, p := range []struct {
		body string
		h    http.Header
	}{
		{"now or never", wpHeader("TTL", "0")},
		{"score 1-0", wpHeader("TTL", "3600", "Topic", "score")},
		{"gone soon", wpHeader("TTL", "1")},
		{"score 2-0", wpHeader("TTL", "3600", "Topic", "score")},
		{"whenever", wpHeader("TTL", "3600", "Urgency", "very-low")},
	} {
		if r := wpPost(t, endpoint, p.h, []byte(p.body)); r.StatusCode != http.StatusCreated {
			t.Fatalf("post %q while away: %d", p.body, r.StatusCode)
		}
	}
	ts.clk.Advance(2 * time.Second) // "gone soon" expires

	b = ts.browser(uaid)
	var got []string
	for range 2 {
		m := b.notification()
		d, _ := base64.RawURLEncoding.DecodeString(m.Data)
		got = append(got, string(d))
		b.ack(m)
	}
	b.ping() // nothing else comes before the keepalive's answer
	if want := []string{"score 2-0", "whenever"}; !slices.Equal(got, want) {
		t.Fatalf("the browser got %q; want %q", got, want)
	}
	testenv.Eventually(t, frameWait, "the acks empty the queue", func() bool { return ts.queued() == 0 })
}
