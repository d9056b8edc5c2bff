package emulator_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/emulator"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// start runs n phones against a real service, with the emulator's local
// API on a real Unix socket.
func start(t *testing.T, n int) (*emulator.Emulator, *server.Service, string) {
	t.Helper()
	svc := testenv.Service(t, "", server.ServeConfig{})
	emu, err := emulator.New(context.Background(), emulator.Config{Devices: n, Service: svc.URL(),
		DB: filepath.Join(t.TempDir(), "emulator.db"), Logger: testenv.Logger(t),
		Clock: clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- emu.Run(ctx) }()
	sock := testenv.SocketPath(t)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- emu.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-served
		if err := <-done; err != nil {
			t.Errorf("emulator run: %v", err)
		}
		emu.Close()
	})
	testenv.Eventually(t, 20*time.Second, "every phone connected", func() bool { return emu.Connected() == n })
	return emu, svc, sock
}

func send(t *testing.T, uri string, kind mpns.Kind, body []byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
	if kind.Target() != "" {
		req.Header.Set(mpns.HeaderTarget, kind.Target())
	}
	req.Header.Set(mpns.HeaderNotificationClass, "2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestPhonesAreSeparateDevices(t *testing.T) {
	emu, _, sock := start(t, 3)
	ctx := context.Background()
	if got := emu.Names(); len(got) != 3 || got[0] != "phone-0001" || got[2] != "phone-0003" {
		t.Fatalf("names = %v", got)
	}
	ids := map[string]bool{}
	for _, name := range emu.Names() {
		st, err := app.NewClient(sock).WithDevice(name).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.DeviceID == "" || ids[st.DeviceID] {
			t.Fatalf("%s: device id %q is empty or shared", name, st.DeviceID)
		}
		ids[st.DeviceID] = true
	}

	yes := true
	ch, err := app.NewClient(sock).WithDevice("phone-0002").Open(ctx, "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	if resp := send(t, ch.URI, mpns.KindToast, (&mpns.Toast{Text1: "Hi"}).XML()); resp.Header.Get(mpns.HeaderNotificationStatus) != mpns.StatusReceived {
		t.Fatalf("toast: %d %s", resp.StatusCode, resp.Header.Get(mpns.HeaderNotificationStatus))
	}
	testenv.Eventually(t, 5*time.Second, "toast on phone-0002", func() bool {
		toasts, err := emu.Phone("phone-0002").Toasts(ctx, "", 0)
		return err == nil && len(toasts) == 1 && toasts[0].Text1 == "Hi"
	})

	tests := []struct {
		name    string
		device  string
		query   string
		want    int // channels seen
		wantErr bool
	}{
		{name: "header", device: "phone-0002", want: 1},
		{name: "other phone", device: "phone-0003", want: 0},
		{name: "query", query: "?device=phone-0002", want: 1},
		{name: "default is the first phone", want: 0},
		{name: "unknown phone", device: "phone-0009", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := app.NewClient(sock)
			if tt.device != "" {
				c = c.WithDevice(tt.device)
			}
			if tt.query != "" {
				hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, "unix", sock)
				}}}
				resp, err := hc.Get("http://herald/v1/apps/demo/channel" + tt.query)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if (resp.StatusCode == http.StatusOK) != (tt.want == 1) {
					t.Fatalf("status %d", resp.StatusCode)
				}
				return
			}
			chans, err := c.Channels(ctx, "")
			if tt.wantErr {
				var ae *app.Error
				if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Code != app.CodeNotFound {
					t.Fatalf("err = %v, want a 404 NotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(chans) != tt.want {
				t.Fatalf("channels = %d, want %d", len(chans), tt.want)
			}
		})
	}
}

// Dropping one phone's link makes the service report it TempDisconnected
// and queue; bringing it back delivers what was queued.
func TestConnectivity(t *testing.T) {
	emu, svc, _ := start(t, 2)
	ctx := context.Background()
	p := emu.Phone("phone-0001")
	yes := true
	ch, err := p.Open(ctx, "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	p.Link().SetOffline(true)
	testenv.Eventually(t, 5*time.Second, "link down", func() bool { return !p.Link().Connected() })
	// The service learns of the close when its read fails, a moment after
	// the phone has let go.
	testenv.Eventually(t, 5*time.Second, "the service to see one phone", func() bool {
		return testenv.Scrape(t, svc.URL()+server.MetricsPath).Value("herald_service_connected_devices") == 1
	})
	resp := send(t, ch.URI, mpns.KindToast, (&mpns.Toast{Text1: "queued"}).XML())
	if got := resp.Header.Get(mpns.HeaderDeviceConnectionStatus); got != mpns.DeviceTempDisconnected {
		t.Fatalf("device status %q, want %s", got, mpns.DeviceTempDisconnected)
	}
	if !p.Link().Offline() || !emu.Phone("phone-0002").Link().Connected() {
		t.Fatal("only phone-0001 should be offline")
	}
	p.Link().SetOffline(false)
	testenv.Eventually(t, 5*time.Second, "queued toast delivered after reconnect", func() bool {
		toasts, err := p.Toasts(ctx, "", 0)
		return err == nil && len(toasts) == 1 && toasts[0].Text1 == "queued"
	})
	resp = send(t, ch.URI, mpns.KindToast, (&mpns.Toast{Text1: "live"}).XML())
	if got := resp.Header.Get(mpns.HeaderDeviceConnectionStatus); got != mpns.DeviceConnected {
		t.Fatalf("device status %q after coming back", got)
	}
}

func TestBadConfig(t *testing.T) {
	for _, n := range []int{0, -1, emulator.MaxDevices + 1} {
		_, err := emulator.New(context.Background(), emulator.Config{Devices: n, Service: "http://127.0.0.1:1", DB: filepath.Join(t.TempDir(), "e.db")})
		if err == nil {
			t.Errorf("devices=%d: no error", n)
		}
	}
}
