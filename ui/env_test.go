package ui_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
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
