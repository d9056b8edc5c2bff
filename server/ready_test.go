package server_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// gatedStore is a real store that says it is not ready while waiting is
// set, as a cluster's store does until its NATS servers answer.
type gatedStore struct {
	server.Store
	waiting atomic.Pointer[string]
}

func (g *gatedStore) Ready() error {
	if w := g.waiting.Load(); w != nil {
		return fmt.Errorf("teststore: waiting for %s: %w", *w, store.ErrNotReady)
	}
	return nil
}

func probe(t *testing.T, url string) (int, server.Probe, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p server.Probe
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode, p, resp.Header
}

// Until its store is usable a node answers its readiness probe 503 with
// what it waits for, refuses senders (MPNS, Web Push, multicast) and
// devices with 503 and Retry-After, and stores nothing; its liveness probe
// answers all along. Once ready, everything is taken again.
func TestNotReadyRefusesWithRetryAfter(t *testing.T) {
	gs := &gatedStore{}
	ts := startServiceWrapped(t, server.Config{}, sqlitestore.Options{GroupCommit: true},
		func(st server.Store) server.Store { gs.Store = st; return gs })
	base := ts.http.URL
	d := ts.enrol()
	_, uri := d.register("app", true, false)

	if code, p, _ := probe(t, base+server.ReadyPath); code != http.StatusOK || !p.Ready || p.Service != "heraldsvc" {
		t.Fatalf("ready store: /readyz %d %+v", code, p)
	}
	what := "JetStream bucket herald_devices"
	gs.waiting.Store(&what)

	code, p, h := probe(t, base+server.ReadyPath)
	if code != http.StatusServiceUnavailable || p.Ready || p.Service != "heraldsvc" || p.WaitingFor != "teststore: waiting for "+what || h.Get("Retry-After") == "" {
		t.Fatalf("waiting store: /readyz %d %+v Retry-After %q", code, p, h.Get("Retry-After"))
	}
	if code, p, _ := probe(t, base+server.HealthPath); code != http.StatusOK || p.Ready || p.Service != "heraldsvc" {
		t.Fatalf("waiting store: /healthz %d %+v; want 200, not ready", code, p)
	}
	if v := scrape(t, base).Value("herald_service_ready"); v != 0 {
		t.Fatalf("herald_service_ready = %v while waiting", v)
	}

	r := post(t, uri, mpns.KindToast, "2", "while-waiting", toastBody("x"))
	if r.Code != http.StatusServiceUnavailable || r.MessageID != "while-waiting" {
		t.Fatalf("MPNS POST while not ready: %+v", r)
	}
	for name, req := range map[string]*http.Request{
		"mpns":      mustRequest(t, uri, map[string]string{mpns.HeaderTarget: "toast", mpns.HeaderNotificationClass: "2"}, toastBody("x")),
		"web push":  mustRequest(t, uri, map[string]string{"TTL": "60", "Content-Encoding": "aes128gcm"}, bytes.Repeat([]byte{1}, 120)),
		"multicast": mustRequest(t, base+server.MulticastPath, map[string]string{"Content-Type": "application/json"}, []byte(`{"channels":["`+uri+`"],"target":"toast","class":2,"body":"x"}`)),
	} {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s while not ready: %d, Retry-After %q; want 503 with Retry-After", name, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	wsURL := "ws" + strings.TrimPrefix(base, "http") + server.DevicePath
	_, resp, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if !errors.Is(err, websocket.ErrBadHandshake) || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("device upgrade while not ready: %v, %+v; want 503 with Retry-After", err, resp)
	}
	if n, err := ts.store.QueueLength(t.Context()); err != nil || n != 0 {
		t.Fatalf("queued while not ready: %d, %v", n, err)
	}

	gs.waiting.Store(nil)
	if code, p, _ := probe(t, base+server.ReadyPath); code != http.StatusOK || !p.Ready || p.WaitingFor != "" {
		t.Fatalf("ready again: /readyz %d %+v", code, p)
	}
	wantStatus(t, post(t, uri, mpns.KindToast, "2", "after", toastBody("after")), http.StatusOK, mpns.StatusReceived, mpns.DeviceConnected)
	if ns := d.expectNotify(); len(ns) != 1 || ns[0].MessageID != "after" {
		t.Fatalf("delivered after ready: %+v", ns)
	}
	d2 := ts.enrol()
	if d2.id == "" {
		t.Fatal("no device enrolled once ready")
	}
}

// A store without readiness (SQLite) is ready once open; a closing
// server is not.
func TestReadyWithoutReadiness(t *testing.T) {
	ts := startService(t, server.Config{})
	if code, p, _ := probe(t, ts.http.URL+server.ReadyPath); code != http.StatusOK || !p.Ready {
		t.Fatalf("/readyz %d %+v", code, p)
	}
	for _, m := range []string{http.MethodPost, http.MethodDelete} {
		req, _ := http.NewRequest(m, ts.http.URL+server.ReadyPath, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s /readyz: %d, want 405", m, resp.StatusCode)
		}
	}
	ts.srv.Close()
	if code, p, _ := probe(t, ts.http.URL+server.ReadyPath); code != http.StatusServiceUnavailable || p.Ready || p.WaitingFor != "shutting down" {
		t.Fatalf("closed: /readyz %d %+v", code, p)
	}
}

func mustRequest(t *testing.T, url string, headers map[string]string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

// BenchmarkReadyCheck is what every notification pays for readiness: the
// server's shutdown flag and a store's Ready.
func BenchmarkReadyCheck(b *testing.B) {
	gs := &gatedStore{}
	ts := startServiceWrapped(b, server.Config{}, sqlitestore.Options{GroupCommit: true},
		func(st server.Store) server.Store { gs.Store = st; return gs })
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if ts.srv.Ready() != nil {
				b.Fatal("not ready")
			}
		}
	})
}
