package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// Proxy modes: relay everything, or answer the device's hello with a
// forged refusal instead of passing it on.
const (
	relay        = ""
	forgeClose   = "close 4003"
	forgeRefused = "refused frame"
)

// linkProxy is a man in the middle on loopback between a daemon and the
// service: it relays the device link frame by frame, records what the
// device sends, and can forge the service's refusals.
type linkProxy struct {
	t        testing.TB
	upstream string
	hs       *httptest.Server

	mu       sync.Mutex
	mode     string
	forged   int
	sessions [][]recordedFrame // what the device sent, per connection
	conns    []*proxyConn
	wg       sync.WaitGroup
}

// proxyConn serialises writes to one side: both pipes and the forger may
// write to the device.
type proxyConn struct {
	*websocket.Conn
	wmu sync.Mutex
}

func (c *proxyConn) write(typ int, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.WriteMessage(typ, data)
}

func (c *proxyConn) writeClose(code int, text string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
}

type recordedFrame struct {
	typ  int
	data []byte
}

func newLinkProxy(t testing.TB, serviceURL string) *linkProxy {
	p := &linkProxy{t: t, upstream: "ws" + strings.TrimPrefix(serviceURL, "http") + server.DevicePath}
	up := websocket.Upgrader{}
	p.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		devWS, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		svcWS, _, err := websocket.DefaultDialer.Dial(p.upstream, nil)
		if err != nil {
			devWS.Close()
			return
		}
		dev, svc := &proxyConn{Conn: devWS}, &proxyConn{Conn: svcWS}
		p.mu.Lock()
		p.conns = append(p.conns, dev, svc)
		mode := p.mode
		p.sessions = append(p.sessions, nil)
		session := len(p.sessions) - 1
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(svc, dev, -1, "")
		go p.pipe(dev, svc, session, mode)
	}))
	t.Cleanup(func() {
		p.hs.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// URL is the service URL the daemon is given.
func (p *linkProxy) URL() string { return p.hs.URL }

func (p *linkProxy) setMode(m string) {
	p.mu.Lock()
	p.mode = m
	p.mu.Unlock()
}

func (p *linkProxy) forgedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forged
}

// cut drops every connection, so the daemon reconnects through the
// proxy's current mode.
func (p *linkProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// pipe copies frames from src to dst until either ends, passing a close
// on with its code. Frames from the device (session >= 0) are recorded;
// in a forging mode the device's hello is answered with a forged refusal.
func (p *linkProxy) pipe(src, dst *proxyConn, session int, mode string) {
	defer p.wg.Done()
	defer dst.Close()
	for {
		typ, data, err := src.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				dst.writeClose(ce.Code, ce.Text)
			}
			return
		}
		if session >= 0 {
			p.mu.Lock()
			p.sessions[session] = append(p.sessions[session], recordedFrame{typ, data})
			p.mu.Unlock()
			if mode != relay {
				p.forge(src, mode)
				src.Close()
				return
			}
		}
		if err := dst.write(typ, data); err != nil {
			return
		}
	}
}

func (p *linkProxy) forge(dev *proxyConn, mode string) {
	if mode == forgeRefused {
		b, _ := wire.Encode(wire.Refused{Type: wire.TypeRefused, Reason: wire.RefusedRetired, Proof: wire.NewNonce()})
		dev.write(websocket.TextMessage, b)
	}
	dev.writeClose(wire.CloseUnauthorized, wire.RefusedUnknown)
	p.mu.Lock()
	p.forged++
	p.mu.Unlock()
}

// recorded returns what the device sent on the proxy's latest connection.
func (p *linkProxy) recorded() []recordedFrame {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]recordedFrame(nil), p.sessions[len(p.sessions)-1]...)
}

// quickLink retries at once, so that tests over real sockets do not wait
// out the default backoff.
var quickLink = channel.Config{BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}

// TestForgedRefusalKeepsIdentity puts a man in the middle on the plain
// link who answers the daemon's hello with a refusal, bare (close 4003)
// and as a refused frame with a made-up proof. The daemon keeps its
// identity and channel URI, and once the path is clean again gets what
// senders sent meanwhile.
func TestForgedRefusalKeepsIdentity(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	px := newLinkProxy(t, svc.URL())
	d := testenv.StartDaemon(t, daemon.Config{Service: px.URL(), Link: quickLink})
	c := d.Client
	ch := openToast(t, c, "demo")
	id := deviceID(t, c)

	forged := 0
	for _, mode := range []string{forgeClose, forgeRefused} {
		px.setMode(mode)
		px.cut()
		before := forged
		testenv.Eventually(t, 10*time.Second, mode+" forged", func() bool { return px.forgedCount() >= before+3 })
		forged = px.forgedCount()
		if got := deviceID(t, c); got != id {
			t.Fatalf("after a forged %s the device is %q, want %q kept", mode, got, id)
		}
		t.Logf("forged %s: %d refusals, identity kept", mode, forged-before)
	}
	// Senders are told what MPNS told them of a phone out of reach: it
	// is queued for a device that is still enrolled.
	r := post(t, ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "while-forged", body: toastXML("kept", "identity")})
	if r.status != http.StatusOK || r.notification != "Received" {
		t.Fatalf("sender got %d %s while the link was attacked", r.status, r.notification)
	}

	px.setMode(relay)
	px.cut()
	testenv.Eventually(t, 10*time.Second, "link up again", func() bool {
		st, err := c.Status(context.Background())
		return err == nil && st.Connected
	})
	waitToasts(t, c, "demo", "while-forged")
	if got := deviceID(t, c); got != id {
		t.Fatalf("device %q after reconnecting, want %q", got, id)
	}
	now, err := c.Find(ctxFor(t, 10*time.Second), "demo")
	if err != nil || now.URI != ch.URI {
		t.Fatalf("channel URI %q (%v) after the attack, want %q kept", now.URI, err, ch.URI)
	}
	t.Logf("sender: 1 sent during the attack, 1 answered 200 Received, 1 delivered after it; channel URI kept")
}

// TestProvenRefusalReEnrols retires a device on the service while its
// link runs through the same plain, unverified path: the service's
// refusal carries a proof the daemon checks, so it forgets its identity,
// enrols anew and gets new URIs, and the old URIs answer 404 Expired.
func TestProvenRefusalReEnrols(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	px := newLinkProxy(t, svc.URL())
	d := testenv.StartDaemon(t, daemon.Config{Service: px.URL(), Link: quickLink})
	c := d.Client
	old := openToast(t, c, "demo")
	oldID := deviceID(t, c)

	if err := svc.RetireDevice(context.Background(), oldID); err != nil {
		t.Fatal(err)
	}
	expired := func(uri string) {
		t.Helper()
		r := post(t, uri, mpnsRequest{target: "toast", class: "2", messageID: "to-old", body: toastXML("lost", "?")})
		if r.status != http.StatusNotFound || r.subscription != "Expired" {
			t.Fatalf("old URI answered %d %s/%s, want 404 Expired", r.status, r.notification, r.subscription)
		}
	}
	expired(old.URI)

	var now app.Channel
	testenv.Eventually(t, 10*time.Second, "re-enrolled with a new URI", func() bool {
		st, err := c.Status(context.Background())
		if err != nil || !st.Connected || st.DeviceID == oldID || st.DeviceID == "" {
			return false
		}
		now, err = c.Find(context.Background(), "demo")
		return err == nil && now.URI != "" && now.URI != old.URI
	})
	expired(old.URI)
	// The daemon binds the new channel just after registering it: until
	// the bind lands a toast is Suppressed (and not shown).
	testenv.Eventually(t, 10*time.Second, "the new channel bound", func() bool {
		return post(t, now.URI, mpnsRequest{target: "toast", class: "2", messageID: "to-new", body: toastXML("new", "uri")}).received()
	})
	waitToasts(t, c, "demo", "to-new")
	dev, err := svc.Store.Device(context.Background(), oldID)
	if err != nil || dev.RetiredAt.IsZero() {
		t.Fatalf("old device %+v, %v; want it kept retired", dev, err)
	}
	t.Logf("retired through an unverified path: re-enrolled; old URI 2 of 2 answered 404 Expired; new URI 1 sent, 1 Received, 1 delivered")
}

// TestReplayedSessionRefused records a real session through the proxy
// (hello, requests, acks) and plays it back on a new connection while the
// daemon is stopped: the hello's proof was for another challenge, so the
// service refuses it, acknowledges nothing, and the daemon gets every
// notification when it comes back.
func TestReplayedSessionRefused(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	px := newLinkProxy(t, svc.URL())
	dataDir := t.TempDir()
	d := testenv.StartDaemon(t, daemon.Config{Service: px.URL(), DataDir: dataDir, Link: quickLink})
	ch := openToast(t, d.Client, "demo")
	id := deviceID(t, d.Client)
	// The session recorded is a returning device's, not its enrolment.
	px.cut()
	testenv.Eventually(t, 10*time.Second, "reconnected", func() bool {
		st, err := d.Client.Status(context.Background())
		return err == nil && st.Connected && st.Reconnects > 0
	})
	mustReceive(t, ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "seen", body: toastXML("one", "")})
	waitToasts(t, d.Client, "demo", "seen")
	testenv.Eventually(t, 10*time.Second, "the toast acknowledged", func() bool {
		dev, err := svc.Store.Device(context.Background(), id)
		return err == nil && dev.AckedSeq == 1
	})
	d.Stop()

	for _, m := range []string{"a", "b", "c"} {
		r := post(t, ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "queued-" + m, body: toastXML(m, "")})
		if r.status != http.StatusOK || r.notification != "Received" {
			t.Fatalf("sender got %d %s", r.status, r.notification)
		}
	}
	frames := px.recorded()
	var sawHello, sawAck bool
	for _, f := range frames {
		sawHello = sawHello || strings.Contains(string(f.data), `"type":"hello"`)
		sawAck = sawAck || strings.Contains(string(f.data), `"type":"ack"`)
	}
	if !sawHello || !sawAck {
		t.Fatalf("recorded session has hello %v, ack %v; want both", sawHello, sawAck)
	}
	// Played back as the attacker would, with an ack of everything queued
	// added to the recording.
	frames = append(frames, recordedFrame{websocket.TextMessage, []byte(`{"type":"ack","seq":4}`)})
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(svc.URL(), "http")+server.DevicePath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := ws.ReadMessage(); err != nil { // the new challenge
		t.Fatal(err)
	}
	for _, f := range frames {
		if ws.WriteMessage(f.typ, f.data) != nil {
			break // refused already
		}
	}
	var ce *websocket.CloseError
	for {
		_, data, err := ws.ReadMessage()
		if err == nil {
			if strings.Contains(string(data), `"welcome"`) {
				t.Fatalf("replayed hello welcomed: %s", data)
			}
			continue
		}
		if !errors.As(err, &ce) || ce.Code != wire.CloseUnauthorized {
			t.Fatalf("replay ended with %v; want close %d", err, wire.CloseUnauthorized)
		}
		break
	}
	dev, err := svc.Store.Device(context.Background(), id)
	if err != nil || dev.AckedSeq != 1 {
		t.Fatalf("device %+v (%v) after the replay; want acked 1", dev, err)
	}
	if q, err := svc.Store.Pending(context.Background(), id, 0); err != nil || len(q) != 3 {
		t.Fatalf("%d queued after the replay (%v), want 3", len(q), err)
	}

	back := testenv.StartDaemon(t, daemon.Config{Service: px.URL(), DataDir: dataDir, Link: quickLink})
	waitToasts(t, back.Client, "demo", "seen", "queued-a", "queued-b", "queued-c")
	t.Logf("replayed %d frames (hello, requests, acks and a forged ack of all): refused with %d %q, nothing acked; sender: 4 sent, 4 Received, 4 delivered",
		len(frames), ce.Code, ce.Text)
	if got := deviceID(t, back.Client); got != id {
		t.Fatalf("device %q, want %q", got, id)
	}
}
