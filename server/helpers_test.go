package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/wire"
)

// t0 is where every fake clock in these tests starts.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// frameWait bounds how long a test waits for a frame over loopback; it is
// a failsafe against hangs, never what a test measures.
const frameWait = 10 * time.Second

type testService struct {
	t     testing.TB
	srv   *server.Server
	store *sqlitestore.Store
	http  *httptest.Server
	clk   *clock.Fake
}

// startService runs a Server on a real loopback listener and a real SQLite
// store, with a fake clock.
func startService(t testing.TB, cfg server.Config) *testService {
	t.Helper()
	return startServiceWith(t, cfg, sqlitestore.Options{GroupCommit: true})
}

func startServiceWith(t testing.TB, cfg server.Config, opts sqlitestore.Options) *testService {
	t.Helper()
	return startServiceWrapped(t, cfg, opts, func(st server.Store) server.Store { return st })
}

// startServiceWrapped is startServiceWith with the server seeing the store
// through wrap.
func startServiceWrapped(t testing.TB, cfg server.Config, opts sqlitestore.Options, wrap func(server.Store) server.Store) *testService {
	t.Helper()
	clk := clock.NewFake(t0)
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	store := testenv.SQLiteStore(t, filepath.Join(t.TempDir(), "svc.db"), opts)
	hs := httptest.NewUnstartedServer(nil)
	cfg.Store, cfg.Clock, cfg.PublicURL = wrap(store), clk, "http://"+hs.Listener.Addr().String()
	if cfg.Logger == nil {
		cfg.Logger = testenv.Logger(t)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	runServer(t, srv)
	t.Cleanup(func() {
		hs.CloseClientConnections()
		srv.Close()
		hs.Close()
	})
	return &testService{t: t, srv: srv, store: store, http: hs, clk: clk}
}

// testDevice is a device driven by the test over a real websocket, frame
// by frame, with the wire package.
type testDevice struct {
	t      testing.TB
	ts     *testService
	conn   *websocket.Conn
	id     string
	secret string
	req    uint64
}

// enrol connects a new device.
func (ts *testService) enrol() *testDevice {
	ts.t.Helper()
	d := &testDevice{t: ts.t, ts: ts}
	d.connect(0)
	return d
}

// connect (re)connects the device, announcing lastSeq as applied.
func (d *testDevice) connect(lastSeq uint64) {
	d.t.Helper()
	url := "ws" + strings.TrimPrefix(d.ts.http.URL, "http") + server.DevicePath
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		d.t.Fatalf("dial: %v", err)
	}
	d.conn = conn
	d.t.Cleanup(func() { conn.Close() })
	d.send(helloFor(d.t, d.next(), d.id, d.secret, lastSeq))
	w, ok := d.next().(*wire.Welcome)
	if !ok {
		d.t.Fatal("first frame is not welcome")
	}
	if d.id == "" {
		d.id, d.secret = w.ID, w.Secret
	}
	testenv.Eventually(d.t, frameWait, "session registered", func() bool { return d.ts.srv.Connected(d.id) })
}

// disconnect closes the connection and waits until the service has noticed.
func (d *testDevice) disconnect() {
	d.t.Helper()
	d.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	d.conn.Close()
	testenv.Eventually(d.t, frameWait, "session ended", func() bool { return !d.ts.srv.Connected(d.id) })
}

func (d *testDevice) send(v any) {
	d.t.Helper()
	b, err := wire.Encode(v)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		d.t.Fatalf("write: %v", err)
	}
}

func (d *testDevice) next() any {
	d.t.Helper()
	d.conn.SetReadDeadline(time.Now().Add(frameWait))
	_, data, err := d.conn.ReadMessage()
	if err != nil {
		d.t.Fatalf("read: %v", err)
	}
	f, err := wire.DecodeService(data)
	if err != nil {
		d.t.Fatalf("decode %s: %v", data, err)
	}
	return f
}

// register opens a channel for app and binds it.
func (d *testDevice) register(app string, toast, tile bool, pinned ...string) (channelID, uri string) {
	d.t.Helper()
	d.req++
	d.send(wire.Register{Type: wire.TypeRegister, ReqID: d.req, App: app, Channel: "default"})
	r, ok := d.next().(*wire.Registered)
	if !ok || r.Code != "" {
		d.t.Fatalf("register: %+v", r)
	}
	d.bind(r.ChannelID, toast, tile, pinned...)
	return r.ChannelID, r.URI
}

func (d *testDevice) bind(channelID string, toast, tile bool, pinned ...string) {
	d.t.Helper()
	d.req++
	d.send(wire.Bind{Type: wire.TypeBind, ReqID: d.req, ChannelID: channelID, Toast: toast, Tile: tile, Pinned: pinned})
	d.expectResult()
}

func (d *testDevice) power(level string) {
	d.t.Helper()
	d.req++
	d.send(wire.State{Type: wire.TypeState, ReqID: d.req, Power: level})
	d.expectResult()
}

func (d *testDevice) expectResult() {
	d.t.Helper()
	switch f := d.next().(type) {
	case *wire.Result:
		if f.Code != "" {
			d.t.Fatalf("request refused: %+v", f)
		}
	case *wire.Notify:
		d.t.Fatalf("got notifications %v while expecting a result", seqs(f.Notifications))
	default:
		d.t.Fatalf("unexpected frame %T", f)
	}
}

// barrier proves the writer has nothing due: it answers a request, then
// looks at the queue; a second request's answer comes only after that look
// has sent whatever was due.
func (d *testDevice) barrier() {
	d.t.Helper()
	d.power("normal")
	d.power("normal")
}

// expectNotify reads one notify frame.
func (d *testDevice) expectNotify() []wire.Notification {
	d.t.Helper()
	f, ok := d.next().(*wire.Notify)
	if !ok {
		d.t.Fatalf("expected notify, got %T", f)
	}
	return f.Notifications
}

// collect reads notify frames until n notifications have come.
func (d *testDevice) collect(n int) []wire.Notification {
	d.t.Helper()
	var out []wire.Notification
	for len(out) < n {
		out = append(out, d.expectNotify()...)
	}
	if len(out) != n {
		d.t.Fatalf("got %d notifications, want %d", len(out), n)
	}
	return out
}

func (d *testDevice) ack(seq uint64) {
	d.t.Helper()
	d.send(wire.Ack{Type: wire.TypeAck, Seq: seq})
}

func seqs(ns []wire.Notification) []uint64 {
	var out []uint64
	for _, n := range ns {
		out = append(out, n.Seq)
	}
	return out
}

func messageIDs(ns []wire.Notification) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.MessageID)
	}
	return out
}

// waitTimer waits until the session has armed a timer for when.
func (ts *testService) waitTimer(when time.Time) {
	ts.t.Helper()
	testenv.Eventually(ts.t, frameWait, "timer armed for "+when.Sub(t0).String(), func() bool {
		return slices.ContainsFunc(ts.clk.Pending(), when.Equal)
	})
}

// response is what a sender sees.
type response struct {
	Code                       int
	Notification, Subscription string
	Device, MessageID          string
}

// post sends one MPNS notification. class is the X-NotificationClass
// value ("" for none).
func post(t *testing.T, uri string, kind mpns.Kind, class, messageID string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if target := kind.Target(); target != "" {
		req.Header.Set(mpns.HeaderTarget, target)
	}
	if class != "" {
		req.Header.Set(mpns.HeaderNotificationClass, class)
	}
	if messageID != "" {
		req.Header.Set(mpns.HeaderMessageID, messageID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	return response{Code: resp.StatusCode, Notification: h.Get(mpns.HeaderNotificationStatus), Subscription: h.Get(mpns.HeaderSubscriptionStatus),
		Device: h.Get(mpns.HeaderDeviceConnectionStatus), MessageID: h.Get(mpns.HeaderMessageID)}
}

func toastBody(text string) []byte { return (&mpns.Toast{Text1: text}).XML() }

func tileBody(id string, fields ...mpns.Field) []byte {
	return (&mpns.Tile{ID: id, Fields: fields}).XML()
}

func set(name, value string) mpns.Field { return mpns.Field{Name: name, Value: value} }
func clear(name string) mpns.Field      { return mpns.Field{Name: name, Clear: true} }

func wantStatus(t *testing.T, got response, code int, notification, device string) {
	t.Helper()
	if got.Code != code || got.Notification != notification || got.Device != device {
		t.Fatalf("got %d %s/%s, want %d %s/%s", got.Code, got.Notification, got.Device, code, notification, device)
	}
}

// waitQueueEmpty waits until the device's acknowledgements have
// emptied its queue.
func waitQueueEmpty(t *testing.T, ts *testService, deviceID string) {
	t.Helper()
	testenv.Eventually(t, frameWait, "queue emptied by acks", func() bool {
		q, err := ts.store.Pending(context.Background(), deviceID, 0)
		return err == nil && len(q) == 0
	})
}

// runServer runs srv's background work (Server.Run) until the test ends.
func runServer(t testing.TB, srv *server.Server) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server Run: %v", err)
		}
	})
}
