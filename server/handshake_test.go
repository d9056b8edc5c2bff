package server_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/wire"
)

// helloFor answers the service's challenge frame as a device with this
// identity would; an empty id enrols.
func helloFor(t testing.TB, challenge any, id, secret string, lastSeq uint64) wire.Hello {
	t.Helper()
	c, ok := challenge.(*wire.Challenge)
	if !ok {
		t.Fatalf("first frame is %T, not a challenge", challenge)
	}
	h := wire.Hello{Type: wire.TypeHello, Version: wire.Version, LastSeq: lastSeq}
	if id != "" {
		h.ID, h.Nonce = id, wire.NewNonce()
		h.Proof = wire.HelloProof(wire.DeviceKey(secret), c.Nonce, h.Nonce, id)
	}
	return h
}

// handshakeClose dials the service, answers its challenge with build's
// hello and returns the frames before the close and the close itself.
func handshakeClose(t *testing.T, base string, build func(c *wire.Challenge) []byte) ([]any, *websocket.CloseError) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("no challenge: %v", err)
	}
	f, err := wire.DecodeService(data)
	c, ok := f.(*wire.Challenge)
	if err != nil || !ok {
		t.Fatalf("first frame %s: %v", data, err)
	}
	ws.WriteMessage(websocket.TextMessage, build(c))
	var frames []any
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				t.Fatalf("connection ended without a close frame: %v", err)
			}
			return frames, ce
		}
		f, err := wire.DecodeService(data)
		if err != nil {
			t.Fatalf("frame %s: %v", data, err)
		}
		frames = append(frames, f)
	}
}

// TestHelloValidated sends hellos no daemon would: each is refused with
// 4002 and a reason, nothing of it is stored, and a well-behaved device
// on the same service is still served.
func TestHelloValidated(t *testing.T) {
	e := startEnv(t, server.ServeConfig{})
	base := e.svc.URL()
	victim := mustDial(t, base)
	vch := victim.open("victim", "")
	victim.bind(vch.ChannelID, true, false)
	ctx := context.Background()

	asJSON := func(v any) func(*wire.Challenge) []byte {
		return func(*wire.Challenge) []byte { b, _ := json.Marshal(v); return b }
	}
	proven := func(power string) func(*wire.Challenge) []byte {
		return func(c *wire.Challenge) []byte {
			h := helloFor(t, c, victim.id, victim.secret, 0)
			h.Power = power
			b, _ := json.Marshal(h)
			return b
		}
	}
	tests := []struct {
		name   string
		hello  func(*wire.Challenge) []byte
		reason string
	}{
		{"version 1 with its secret", asJSON(map[string]any{"type": "hello", "version": 1, "id": victim.id, "secret": victim.secret}), "unsupported protocol version"},
		{"version 0", asJSON(map[string]any{"type": "hello"}), "unsupported protocol version"},
		{"version 3", asJSON(map[string]any{"type": "hello", "version": 3}), "unsupported protocol version"},
		{"version out of range", func(*wire.Challenge) []byte { return []byte(`{"type":"hello","version":1e99}`) }, "valid hello"},
		{"power of 60 KB, enrolling", asJSON(map[string]any{"type": "hello", "version": wire.Version, "power": strings.Repeat("p", 60<<10)}), "valid hello"},
		{"power of 60 KB, proven", proven(strings.Repeat("p", 60<<10)), "valid hello"},
		{"power unknown, proven", proven("turbo"), "valid hello"},
		{"not a hello", asJSON(map[string]any{"type": "ack", "seq": 1}), "valid hello"},
		{"version 2, proven, with its secret too", func(c *wire.Challenge) []byte {
			h := helloFor(t, c, victim.id, victim.secret, 0)
			h.Secret = victim.secret
			b, _ := json.Marshal(h)
			return b
		}, "valid hello"},
		{"enrolling with a nonce", asJSON(map[string]any{"type": "hello", "version": wire.Version, "nonce": wire.NewNonce()}), "valid hello"},
	}
	refused, served := 0, 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devices := countDevices(t, e)
			frames, ce := handshakeClose(t, base, tt.hello)
			if len(frames) != 0 || ce.Code != wire.CloseProtocol || !strings.Contains(ce.Text, tt.reason) {
				t.Fatalf("frames %v, close %d %q; want none and close %d with %q", frames, ce.Code, ce.Text, wire.CloseProtocol, tt.reason)
			}
			if n := countDevices(t, e); n != devices {
				t.Fatalf("%d devices after a refused hello, want %d", n, devices)
			}
			d, err := e.svc.Store.Device(ctx, victim.id)
			if err != nil || d.Power != "normal" {
				t.Fatalf("victim's stored power %q (%v) after a refused hello, want normal", d.Power, err)
			}
			refused++
			checkServed(t, victim, vch.URI)
			served++
		})
	}
	t.Logf("hellos no daemon sends: %d tried, %d closed 4002, 0 devices created, stored power unchanged; legitimate sender and device: sent %d, 200 Received %d, delivered %d",
		len(tests), refused, served, served, served)
	m := testenv.Scrape(t, base+server.MetricsPath)
	for reason, want := range map[string]float64{"unsupported version": 3, "bad hello": 7, wire.RefusedBadProof: 0} {
		if got := m.Value("herald_service_device_refusals_total", "reason", reason); got != want {
			t.Errorf("refusals for %q: %v, want %v", reason, got, want)
		}
	}
}

func countDevices(t *testing.T, e *env) int {
	t.Helper()
	n, err := e.svc.Store.CountDevicesFromSource(context.Background(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestHandshakeProofs checks both ends' proofs: the welcome proves the
// service knows the device's key, for this connection's nonces; a proof
// made for one challenge fails on another; an unknown device and a wrong
// proof get a bare refusal; a retired device gets a refusal it can verify,
// and its URIs answer 404 Expired.
func TestHandshakeProofs(t *testing.T) {
	e := startEnv(t, server.ServeConfig{})
	base := e.svc.URL()
	dev := mustDial(t, base)
	ch := dev.open("mail", "")
	key := wire.DeviceKey(dev.secret)
	dev.hangUp(e.svc)

	t.Run("welcome proven", func(t *testing.T) {
		var hello wire.Hello
		var challenge *wire.Challenge
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(base), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		d := &device{t: t, ws: ws}
		f, err := d.read()
		if err != nil {
			t.Fatal(err)
		}
		challenge = f.(*wire.Challenge)
		hello = helloFor(t, challenge, dev.id, dev.secret, 0)
		d.send(hello)
		f, err = d.read()
		w, ok := f.(*wire.Welcome)
		if err != nil || !ok {
			t.Fatalf("answer %T %v; want welcome", f, err)
		}
		if w.Secret != "" || !wire.ProofEqual(w.Proof, wire.WelcomeProof(key, challenge.Nonce, hello.Nonce, dev.id)) {
			t.Fatalf("welcome %+v: secret sent again or proof wrong", w)
		}
		ws.Close()
		testenv.Eventually(t, 10*time.Second, "session ended", func() bool { return !e.svc.Connected(dev.id) })
	})

	var first *wire.Challenge
	refusals := []struct {
		name   string
		hello  func(c *wire.Challenge) []byte
		reason string
	}{
		{"proof for another challenge", func(c *wire.Challenge) []byte {
			if first == nil {
				t.Fatal("no earlier challenge")
			}
			b, _ := json.Marshal(helloFor(t, first, dev.id, dev.secret, 0))
			return b
		}, wire.RefusedBadProof},
		{"wrong secret", func(c *wire.Challenge) []byte {
			b, _ := json.Marshal(helloFor(t, c, dev.id, "guess", 0))
			return b
		}, wire.RefusedBadProof},
		{"unknown device", func(c *wire.Challenge) []byte {
			b, _ := json.Marshal(helloFor(t, c, "nobody", dev.secret, 0))
			return b
		}, wire.RefusedUnknown},
	}
	// A challenge seen on one connection, for the replay above.
	handshakeClose(t, base, func(c *wire.Challenge) []byte { first = c; return []byte(`{}`) })
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			frames, ce := handshakeClose(t, base, tt.hello)
			if len(frames) != 0 || ce.Code != wire.CloseUnauthorized || ce.Text != tt.reason {
				t.Fatalf("frames %v, close %d %q; want a bare close %d %q", frames, ce.Code, ce.Text, wire.CloseUnauthorized, tt.reason)
			}
		})
	}

	t.Run("retired", func(t *testing.T) {
		live := mustDialAs(t, base, dev.id, dev.secret)
		if err := e.svc.RetireDevice(context.Background(), dev.id); err != nil {
			t.Fatal(err)
		}
		if code := closeCode(t, live.ws); code != wire.CloseUnauthorized {
			t.Fatalf("live session closed with %d, want %d", code, wire.CloseUnauthorized)
		}
		r := postMPNS(t, nil, http.MethodPost, ch.URI, rawHeaders(), "x")
		if r.code != http.StatusNotFound || r.header.Get("X-SubscriptionStatus") != "Expired" {
			t.Fatalf("retired device's URI answered %d %v", r.code, r.header)
		}
		var hello wire.Hello
		var challenge *wire.Challenge
		frames, ce := handshakeClose(t, base, func(c *wire.Challenge) []byte {
			challenge, hello = c, helloFor(t, c, dev.id, dev.secret, 0)
			b, _ := json.Marshal(hello)
			return b
		})
		if ce.Code != wire.CloseUnauthorized || ce.Text != wire.RefusedRetired || len(frames) != 1 {
			t.Fatalf("frames %v, close %d %q; want one refused frame and close %d %q", frames, ce.Code, ce.Text, wire.CloseUnauthorized, wire.RefusedRetired)
		}
		ref, ok := frames[0].(*wire.Refused)
		if !ok || ref.Reason != wire.RefusedRetired ||
			!wire.ProofEqual(ref.Proof, wire.RefusedProof(key, challenge.Nonce, hello.Nonce, dev.id, wire.RefusedRetired)) {
			t.Fatalf("refusal %+v does not prove itself", frames[0])
		}
		// Without the key, a retired device's refusal is as bare as any.
		frames, ce = handshakeClose(t, base, func(c *wire.Challenge) []byte {
			b, _ := json.Marshal(helloFor(t, c, dev.id, "guess", 0))
			return b
		})
		if len(frames) != 0 || ce.Text != wire.RefusedBadProof {
			t.Fatalf("retired device, wrong secret: frames %v, close %q", frames, ce.Text)
		}
	})
	m := testenv.Scrape(t, base+server.MetricsPath)
	for reason, want := range map[string]float64{wire.RefusedBadProof: 3, wire.RefusedUnknown: 1, wire.RefusedRetired: 1, "bad hello": 1} {
		if got := m.Value("herald_service_device_refusals_total", "reason", reason); got != want {
			t.Errorf("refusals for %q: %v, want %v", reason, got, want)
		}
	}
}

func mustDialAs(t *testing.T, base, id, secret string) *device {
	t.Helper()
	d, err := dial(t, base, id, secret)
	if err != nil {
		t.Fatalf("connecting %s: %v", id, err)
	}
	return d
}

// TestUpgradeKeepsEnrolledDevices opens a database written before version
// 2 of the protocol (schema version 2, the secret's SHA-256 stored): the
// device enrolled then proves itself with the secret it was given then.
func TestUpgradeKeepsEnrolledDevices(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "heraldsvc.db")
	db, err := sql.Open("sqlite3", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"0001_init.sql", "0002_queue_tile.sql"} {
		b, err := os.ReadFile(filepath.Join("store", "sqlitestore", "migrations", m))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(string(b)); err != nil {
			t.Fatal(err)
		}
	}
	secret := "secret-from-before"
	sum := sha256.Sum256([]byte(secret))
	for _, q := range []string{
		"PRAGMA user_version = 2",
		fmt.Sprintf(`INSERT INTO devices (id, secret_hash, created_at, last_seen) VALUES ('old-device', x'%x', 0, 0)`, sum[:]),
		`INSERT INTO channels (id, device_id, app, name, token, created_at) VALUES ('old-ch', 'old-device', 'mail', 'main', 'old-token-000000000000000000000000', 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	svc := testenv.Service(t, dir, server.ServeConfig{})
	d := mustDialAs(t, svc.URL(), "old-device", secret)
	r := d.open("mail", "")
	if r.Code != "" || r.ChannelID != "old-ch" {
		t.Fatalf("the channel from before: %+v", r)
	}
	mustPost(t, nil, r.URI)
	if n := d.nextNotification(); n.ChannelID != "old-ch" {
		t.Fatalf("notification %+v", n)
	}
}

// retireOnRead retires a device right after the service has read it to
// identify it, the narrowest race between a retirement and a returning
// device: the read saw the device before the retirement committed.
type retireOnRead struct {
	server.Store
	mu     sync.Mutex
	target string
	retire func()
}

func (r *retireOnRead) Device(ctx context.Context, id string) (store.Device, error) {
	d, err := r.Store.Device(ctx, id)
	r.mu.Lock()
	retire := r.retire
	if id == r.target {
		r.retire = nil
	}
	r.mu.Unlock()
	if id == r.target && retire != nil {
		retire()
	}
	return d, err
}

// TestRetiredWhileIdentifying retires a device between the service
// reading it and its session going live: the session is ended before
// its welcome, so the device can neither register a channel under the
// retired identity nor be told it is accepted.
func TestRetiredWhileIdentifying(t *testing.T) {
	st := testenv.SQLiteStore(t, filepath.Join(t.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true})
	defer st.Close()
	wrapped := &retireOnRead{Store: st}
	hs := httptest.NewUnstartedServer(nil)
	srv, err := server.New(server.Config{Store: wrapped, Clock: clock.NewFake(t0), Logger: testenv.Logger(t),
		PublicURL: "http://" + hs.Listener.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	defer func() {
		hs.CloseClientConnections()
		srv.Close()
		hs.Close()
	}()

	d := mustDial(t, hs.URL)
	ch := d.open("mail", "")
	d.ws.Close()
	testenv.Eventually(t, 10*time.Second, "session ended", func() bool { return !srv.Connected(d.id) })

	wrapped.mu.Lock()
	wrapped.target = d.id
	wrapped.retire = func() {
		if err := srv.RetireDevice(context.Background(), d.id); err != nil {
			t.Errorf("retiring: %v", err)
		}
	}
	wrapped.mu.Unlock()
	frames, ce := handshakeClose(t, hs.URL, func(c *wire.Challenge) []byte {
		b, _ := json.Marshal(helloFor(t, c, d.id, d.secret, 0))
		return b
	})
	if len(frames) != 0 || ce.Code != wire.CloseUnauthorized || ce.Text != wire.RefusedRetired {
		t.Fatalf("frames %v, close %d %q; want no welcome and close %d %q", frames, ce.Code, ce.Text, wire.CloseUnauthorized, wire.RefusedRetired)
	}
	if srv.Connected(d.id) {
		t.Fatal("a retired device's session is live")
	}
	r := postMPNS(t, nil, http.MethodPost, ch.URI, rawHeaders(), "x")
	if r.code != http.StatusNotFound {
		t.Fatalf("retired device's URI answered %d", r.code)
	}
}

// A hello records when the device was seen (when last-seen is older than
// the session's refresh period) and acknowledges what it says it applied
// without waiting for a commit: both land in the store soon after,
// last-seen never moving back behind the session's end. A device back a
// moment after its session ended costs no last-seen write.
func TestHelloTouchAndAckLand(t *testing.T) {
	ts := startService(t, server.Config{})
	ctx := context.Background()
	d := ts.enrol()
	_, uri := d.register("app", true, false)
	for i := range 3 {
		wantStatus(t, post(t, uri, "", "", fmt.Sprintf("m%d", i), []byte("raw")), http.StatusOK, "Received", "Connected")
	}
	got := d.collect(3)
	d.disconnect()
	ended, err := ts.store.Device(ctx, d.id)
	if err != nil {
		t.Fatal(err)
	}

	ts.clk.Advance(server.DefaultInactiveAfter/8 + time.Hour)
	back := ts.clk.Now()
	d.connect(got[2].Seq)
	testenv.Eventually(t, frameWait, "the hello's last-seen and ack in the store", func() bool {
		dev, err := ts.store.Device(ctx, d.id)
		if err != nil {
			t.Fatal(err)
		}
		if dev.LastSeen.Before(ended.LastSeen) {
			t.Fatalf("last seen moved back from %v to %v", ended.LastSeen, dev.LastSeen)
		}
		return dev.LastSeen.Equal(back.Truncate(time.Millisecond)) && dev.AckedSeq == got[2].Seq
	})
	if q, err := ts.store.Pending(ctx, d.id, 0); err != nil || len(q) != 0 {
		t.Fatalf("queue after the hello's ack: %v, %v", q, err)
	}

	// Back a minute after the session's end: last-seen stays the end's,
	// which is what the hello would have written, to the minute.
	wantStatus(t, post(t, uri, "", "", "m3", []byte("raw")), http.StatusOK, "Received", "Connected")
	last := d.collect(1)
	d.disconnect()
	testenv.Eventually(t, frameWait, "the session's end", func() bool { return !ts.srv.Connected(d.id) })
	ended, err = ts.store.Device(ctx, d.id)
	if err != nil {
		t.Fatal(err)
	}
	ts.clk.Advance(time.Minute)
	d.connect(last[0].Seq)
	testenv.Eventually(t, frameWait, "the second hello's ack in the store", func() bool {
		dev, err := ts.store.Device(ctx, d.id)
		if err != nil {
			t.Fatal(err)
		}
		if !dev.LastSeen.Equal(ended.LastSeen) {
			t.Fatalf("last seen %v, want the session's end %v", dev.LastSeen, ended.LastSeen)
		}
		return dev.AckedSeq == last[0].Seq
	})
}

// A last-seen in the future (another node's clock ahead, or a bad write)
// costs no write at the hello, and never holds the session's own refresh
// back: it comes due a refresh period after the hello, as for any device.
func TestHelloLastSeenInTheFuture(t *testing.T) {
	ts := startService(t, server.Config{})
	ctx := context.Background()
	d := ts.enrol()
	d.disconnect()
	future := ts.clk.Now().Add(365 * 24 * time.Hour)
	if err := ts.store.TouchDevice(ctx, d.id, future); err != nil {
		t.Fatal(err)
	}
	d.connect(0)
	ts.clk.Advance(server.DefaultInactiveAfter/8 + time.Minute)
	refreshed := ts.clk.Now()
	d.send(wire.Ack{Type: wire.TypeAck, Seq: 0})
	testenv.Eventually(t, frameWait, "the session's refresh of last-seen", func() bool {
		dev, err := ts.store.Device(ctx, d.id)
		if err != nil {
			t.Fatal(err)
		}
		return dev.LastSeen.Equal(refreshed.Truncate(time.Millisecond))
	})
}
