package ui_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/emulator"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/ui"
)

// env is a real notification service, emulated phones connected to it over
// loopback websockets, and the UI on a loopback HTTP server.
type env struct {
	emu *emulator.Emulator
	ui  *ui.UI
	url string // the UI's base URL
}

func newEnv(t *testing.T, phones int) *env {
	t.Helper()
	svc := testenv.Service(t, "", server.ServeConfig{})
	e := &env{}
	emu, err := emulator.New(context.Background(), emulator.Config{Devices: phones, Service: svc.URL(),
		DB: filepath.Join(t.TempDir(), "emulator.db"), Logger: testenv.Logger(t),
		Clock:    clock.NewFake(time.Date(2026, 1, 1, 9, 41, 0, 0, time.UTC)),
		OnChange: func(phone string, c daemon.Change) { e.ui.Notify(phone, c) }})
	if err != nil {
		t.Fatal(err)
	}
	e.emu = emu
	e.ui = ui.New(ui.Config{Phones: emu, Logger: testenv.Logger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- emu.Run(ctx) }()
	srv := httptest.NewUnstartedServer(e.ui.Handler())
	srv.Config.BaseContext = nil
	srv.Start()
	e.url = srv.URL
	registerKey(t, srv.URL, e.ui.Key())
	t.Cleanup(func() {
		// Open event streams end with the browser; close them first so
		// the server's Close does not wait for them.
		srv.CloseClientConnections()
		srv.Close()
		cancel()
		<-done
		emu.Close()
	})
	testenv.Eventually(t, 20*time.Second, "phones connected", func() bool { return emu.Connected() == phones })
	return e
}

// uiKeys holds each test UI's key by its port, as the page learns it from
// the address `herald ui-url` prints; every name of the UI (127.0.0.1,
// localhost, [::1]) has the same port.
var uiKeys sync.Map

func registerKey(t *testing.T, base, key string) {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	uiKeys.Store(u.Port(), key)
}

// keyFor returns the key of the UI at base.
func keyFor(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := uiKeys.Load(u.Port())
	if !ok {
		t.Fatalf("no key known for the UI at %s", base)
	}
	return k.(string)
}

// pageURL is the address the page is opened at: path (with its query) and
// the key in the fragment, as `herald ui-url` prints it.
func (e *env) pageURL(path string) string {
	return e.url + path + ui.KeyFragment + e.ui.Key()
}

// open opens app's channel on phone, bound to toast and tile.
func (e *env) open(t *testing.T, phone, appID string, domains ...string) app.Channel {
	t.Helper()
	yes := true
	if domains == nil {
		domains = []string{}
	}
	ch, err := e.emu.Phone(phone).Open(context.Background(), appID, app.OpenRequest{Toast: &yes, Tile: &yes, Domains: &domains})
	if err != nil {
		t.Fatal(err)
	}
	return app.Channel{App: ch.App, URI: ch.URI}
}

// send POSTs a notification to a channel URI as a cloud service does.
func send(t *testing.T, uri string, kind mpns.Kind, body []byte) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
	req.Header.Set("Content-Type", "text/xml")
	if kind.Target() != "" {
		req.Header.Set(mpns.HeaderTarget, kind.Target())
	}
	req.Header.Set(mpns.HeaderNotificationClass, map[mpns.Kind]string{mpns.KindTile: "1", mpns.KindToast: "2", mpns.KindRaw: "3"}[kind])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(mpns.HeaderNotificationStatus) != mpns.StatusReceived {
		t.Fatalf("send %s: %d %s", kind, resp.StatusCode, resp.Header.Get(mpns.HeaderNotificationStatus))
	}
	return resp
}

func tile(id, template string, fields ...string) []byte {
	t := mpns.Tile{ID: id, Template: template}
	for i := 0; i+1 < len(fields); i += 2 {
		t.Fields = append(t.Fields, mpns.Field{Name: fields[i], Value: fields[i+1]})
	}
	return t.XML()
}
