package server_test

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// wsDialerFrom dials the device endpoint from the loopback address ip, so
// the service sees another source.
func wsDialerFrom(ip string) *websocket.Dialer {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &websocket.Dialer{NetDialContext: d.DialContext, HandshakeTimeout: 10 * time.Second}
}

// upgradeFrom opens a device connection from ip and reads the challenge,
// saying no hello; resp is the refusal when the upgrade was refused.
func upgradeFrom(t *testing.T, base, ip string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ws, resp, err := wsDialerFrom(ip).Dial(wsURL(base), nil)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { ws.Close() })
	ws.SetReadDeadline(time.Now().Add(frameWait))
	if _, _, err := ws.ReadMessage(); err != nil {
		return nil, nil, err
	}
	return ws, nil, nil
}

// dialFrom is dial from the loopback address ip.
func dialFrom(t *testing.T, base, ip, id, secret string) (*device, error) {
	t.Helper()
	ws, _, err := wsDialerFrom(ip).Dial(wsURL(base), nil)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { ws.Close() })
	d := &device{t: t, ws: ws, id: id, secret: secret}
	f, err := d.read()
	if err != nil {
		return nil, err
	}
	d.send(helloFor(t, f, id, secret, 0))
	if f, err = d.read(); err != nil {
		return nil, err
	}
	w, ok := f.(*wire.Welcome)
	if !ok {
		return nil, errors.New("no welcome")
	}
	if id == "" {
		d.id, d.secret = w.ID, w.Secret
	}
	return d, nil
}

// wantRefused checks a refused upgrade: 503 with a Retry-After in the
// spread, and the connection closed.
func wantRefused(t *testing.T, what string, resp *http.Response, err error) {
	t.Helper()
	if resp == nil {
		t.Fatalf("%s: not refused with an answer: %v", what, err)
	}
	after, aerr := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusServiceUnavailable || aerr != nil || after < 1 || after > 11 || !resp.Close {
		t.Fatalf("%s: %d, Retry-After %q, close %v; want 503, 1-11 s, closed", what, resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close)
	}
}

// Connections that say no hello are bounded per source and in total:
// past its bound a source is refused with 503 and Retry-After before any
// upgrade, while another source's device connects; past the total every
// new one waits for a place, and a place comes back when a connection
// says hello or goes.
func TestPendingHellosBounded(t *testing.T) {
	const perSource, total = 8, 20
	svc := startPlain(t, withDB(t, server.ServeConfig{Server: server.Config{
		Limits: server.Limits{MaxPendingHellosPerSource: perSource, MaxPendingHellos: total}}}))
	base := svc.URL()
	metrics := func() testenv.Metrics { return testenv.Scrape(t, base+server.MetricsPath) }

	var held []*websocket.Conn
	for i := range perSource {
		ws, _, err := upgradeFrom(t, base, "127.0.0.9")
		if err != nil {
			t.Fatalf("connection %d from 127.0.0.9: %v", i, err)
		}
		held = append(held, ws)
	}
	_, resp, err := upgradeFrom(t, base, "127.0.0.9")
	wantRefused(t, "one more from 127.0.0.9", resp, err)
	if _, err := dialFrom(t, base, "127.0.0.3", "", ""); err != nil {
		t.Fatalf("a device from 127.0.0.3 while 127.0.0.9 is at its bound: %v", err)
	}

	// Fill the total from two more sources.
	for i := range total - perSource {
		ws, _, err := upgradeFrom(t, base, "127.0.0."+strconv.Itoa(10+i%2))
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		held = append(held, ws)
	}
	_, resp, err = upgradeFrom(t, base, "127.0.0.3")
	wantRefused(t, "a device at the total", resp, err)
	m := metrics()
	if got := m.Value("herald_service_device_hellos_pending"); got != total {
		t.Errorf("pending %v, want %d", got, total)
	}
	if s, tot := m.Value("herald_service_device_hellos_refused_total", "bound", "source"), m.Value("herald_service_device_hellos_refused_total", "bound", "total"); s != 1 || tot != 1 {
		t.Errorf("refused by source %v, by total %v; want 1 and 1", s, tot)
	}

	// A connection that says hello gives its place back, and so does one
	// that goes.
	d := &device{t: t, ws: held[0]}
	d.send(helloFor(t, &wire.Challenge{}, "", "", 0))
	held[1].Close()
	testenv.Eventually(t, frameWait, "two places given back", func() bool {
		return metrics().Value("herald_service_device_hellos_pending") == total-2
	})
	if _, err := dialFrom(t, base, "127.0.0.3", "", ""); err != nil {
		t.Fatalf("a device once places came back: %v", err)
	}
	for _, ws := range held[2:] {
		ws.Close()
	}
	testenv.Eventually(t, frameWait, "every place given back", func() bool {
		return metrics().Value("herald_service_device_hellos_pending") == 0
	})
}

// The source of the pending bound is the sender limits' one: an IPv6
// peer counts by its /64.
func TestPendingHellosByIPv6Prefix(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	ln.Close()
	svc := startPlain(t, server.ServeConfig{Listen: "[::1]:0", Server: server.Config{
		Limits: server.Limits{MaxPendingHellosPerSource: 2, MaxPendingHellos: 10}}})
	base := svc.URL()
	for i := range 2 {
		if _, _, err := upgradeFrom(t, base, "::1"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	_, resp, err := upgradeFrom(t, base, "::1")
	wantRefused(t, "a third from ::1", resp, err)
}
