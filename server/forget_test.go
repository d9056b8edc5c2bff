package server_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/wire"
)

// TestForgetsDevicesThatNeverComeBack runs the service's clock past
// ForgetDevicesAfter: a device away that long is deleted with its channels
// and queue (its URI answers 404 Expired, its identity 4003), while a
// device seen more recently and a device connected all along stay, and are
// still served.
func TestForgetsDevicesThatNeverComeBack(t *testing.T) {
	const forget = 90 * 24 * time.Hour
	ts := startService(t, server.Config{ForgetDevicesAfter: forget})
	ctx := context.Background()
	metrics := ts.http.URL + server.MetricsPath

	gone := ts.enrol()
	goneCh, goneURI := gone.register("app", true, false)
	gone.disconnect()
	// Queued while it is away: deleted with it.
	wantStatus(t, post(t, goneURI, mpns.KindToast, "", "queued", toastBody("q")), 200, "Received", "TempDisconnected")

	later := ts.enrol()
	_, laterURI := later.register("app", true, false)
	later.disconnect()

	online := ts.enrol()
	_, onlineURI := online.register("app", true, false)

	// The late device was seen 30 days on; the other two not since t0.
	// Each step waits for the sweep's timer to be set, so the clock is
	// never moved past a timer not yet armed.
	ts.waitTimer(t0.Add(time.Hour))
	ts.clk.Advance(30 * 24 * time.Hour)
	ts.waitTimer(t0.Add(30*24*time.Hour + time.Hour))
	later.connect(0)
	later.disconnect()

	ts.clk.Advance(forget - 30*24*time.Hour + time.Hour)
	testenv.Eventually(t, frameWait, "a sweep to delete the device away for 90 days", func() bool {
		return testenv.Scrape(t, metrics).Value("herald_service_devices_forgotten_total") == 1
	})

	if _, err := ts.store.Device(ctx, gone.id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the device away for 90 days: %v, want not found", err)
	}
	if _, err := ts.store.Channel(ctx, goneCh); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("its channel: %v, want not found", err)
	}
	if q, err := ts.store.Pending(ctx, gone.id, 0); err != nil || len(q) != 0 {
		t.Fatalf("its queue: %d entries, %v", len(q), err)
	}
	// Its URI was in the channel cache, having just been posted to.
	wantStatus(t, post(t, goneURI, mpns.KindToast, "", "after", toastBody("x")), 404, "Dropped", "Disconnected")
	// Coming back, it is unknown: it enrols anew.
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.http.URL, "http")+server.DevicePath, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(frameWait))
	_, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	challenge, err := wire.DecodeService(data)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := wire.Encode(helloFor(t, challenge, gone.id, gone.secret, 0))
	conn.WriteMessage(websocket.TextMessage, b)
	var ce *websocket.CloseError
	if _, _, err := conn.ReadMessage(); !errors.As(err, &ce) || ce.Code != wire.CloseUnauthorized {
		t.Fatalf("the deleted device's hello: %v, want close %d", err, wire.CloseUnauthorized)
	}

	// The others are kept and served: the one away is queued for (it is
	// past InactiveAfter, so 412), the connected one delivered to.
	if _, err := ts.store.Device(ctx, later.id); err != nil {
		t.Fatalf("the device seen 60 days ago was deleted: %v", err)
	}
	wantStatus(t, post(t, laterURI, mpns.KindToast, "", "l", toastBody("l")), 412, "Dropped", "InActive")
	if _, err := ts.store.Device(ctx, online.id); err != nil {
		t.Fatalf("the connected device was deleted: %v", err)
	}
	wantStatus(t, post(t, onlineURI, mpns.KindToast, "", "o", toastBody("o")), 200, "Received", "Connected")
	if n := online.expectNotify(); len(n) != 1 || n[0].MessageID != "o" {
		t.Fatalf("the connected device got %+v", n)
	}
	t.Logf("devices away 90 days and an hour, 60 days, connected: 1 of 3 deleted with its channel and queue, its URI 404 Expired, its hello 4003; connected device: sent 1, 200 Received 1, delivered 1")
}

// TestForgetDevicesAfterBounds: forgetting devices sooner than they count
// as inactive would turn 412 into 404 for devices senders are told about.
func TestForgetDevicesAfterBounds(t *testing.T) {
	st := testenv.SQLiteStore(t, t.TempDir()+"/svc.db", sqlitestore.Options{})
	defer st.Close()
	_, err := server.New(server.Config{Store: st, PublicURL: "http://push.example.com", InactiveAfter: 72 * time.Hour, ForgetDevicesAfter: 72 * time.Hour})
	if err == nil {
		t.Fatal("ForgetDevicesAfter equal to InactiveAfter was accepted")
	}
}

// TestDotPathsNotRedirected sends raw request lines with "..", "." and "//"
// over a real connection: each is answered 404, never a redirect to the
// cleaned path, and a clean path still reaches its handler.
func TestDotPathsNotRedirected(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("app", true, false)
	token := uri[strings.LastIndex(uri, "/")+1:]
	addr := ts.http.Listener.Addr().String()

	tests := []struct {
		method, target string
		want           int
	}{
		{"GET", "/..", 404},
		{"GET", "/../../etc/passwd", 404},
		{"GET", "/metrics/..", 404},
		{"GET", "/device/../metrics", 404},
		{"POST", server.ThrottledPath + "../../device", 404},
		{"POST", server.ThrottledPath + "x/../" + token, 404},
		{"POST", server.ThrottledPath + "./" + token, 404},
		{"POST", "/throttledthirdparty//01.00/" + token, 404},
		{"POST", "//multicast", 404},
		{"GET", "/", 200},
		{"GET", server.MetricsPath, 200},
	}
	unredirected := 0
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", tt.method, tt.target, addr)
			c.SetReadDeadline(time.Now().Add(frameWait))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want || resp.Header.Get("Location") != "" {
				t.Fatalf("%s %s: %d Location %q, want %d and no redirect", tt.method, tt.target, resp.StatusCode, resp.Header.Get("Location"), tt.want)
			}
			unredirected++
		})
	}
	// Nothing was delivered through a cleaned path.
	d.barrier()
	t.Logf("raw request lines: %d tried, %d answered as expected without a Location (404 for every unclean path); 0 notifications delivered through a cleaned path", len(tests), unredirected)
}
