package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// startRunService runs the whole service as heraldsvc does (server.Start:
// its own listener, store and commit observer) on a fake clock, and wraps
// it for the frame-level test device.
func startRunService(t *testing.T) (*testService, *server.Service) {
	t.Helper()
	clk := clock.NewFake(t0)
	svc := testenv.Service(t, "", server.ServeConfig{Server: server.Config{Clock: clk, Logger: testenv.Logger(t)}})
	// The test device only dials the URL.
	return &testService{t: t, srv: svc.Server, store: svc.Store.(*sqlitestore.Store), http: &httptest.Server{URL: svc.URL()}, clk: clk}, svc
}

// scrape reads the service's /metrics over HTTP, as Prometheus would.
func scrape(t *testing.T, base string) testenv.Metrics {
	t.Helper()
	return testenv.Scrape(t, base+server.MetricsPath)
}

func notifications(fams testenv.Metrics, kind, status, code string) float64 {
	return fams.Value("herald_service_notifications_total", "kind", kind, "status", status, "code", code)
}

// TestMetricsMoveWithTraffic sends real notifications through the MPNS
// endpoint to a real device session and checks that every metric moved by
// exactly what was sent, on a fake clock so that latencies are exact.
func TestMetricsMoveWithTraffic(t *testing.T) {
	ts, svc := startRunService(t)
	base := svc.URL()

	d := ts.enrol()
	_, uri := d.register("app", true, true)
	fams := scrape(t, base)
	want := []struct {
		name string
		want float64
	}{
		{"herald_service_connected_devices", 1},
		{"herald_service_device_connects_total", 1},
		{"herald_service_device_reconnects_total", 0},
		{"herald_service_queued_notifications", 0},
	}
	for _, w := range want {
		if got := fams.Value(w.name); got != w.want {
			t.Errorf("after enrolment %s = %v, want %v", w.name, got, w.want)
		}
	}
	if got := notifications(fams, "toast", "Received", "200"); got != 0 {
		t.Fatalf("toasts received before any was sent: %v", got)
	}

	// Three toasts delivered at once, then answers of every other kind.
	for i := range 3 {
		wantStatus(t, post(t, uri, mpns.KindToast, "", "t"+string(rune('0'+i)), toastBody("hi")), 200, "Received", "Connected")
	}
	got := d.collect(3)
	wantStatus(t, post(t, uri+"gone", mpns.KindToast, "", "", toastBody("x")), 404, "Dropped", "Disconnected")
	wantStatus(t, post(t, uri, mpns.KindTile, "", "", tileBody("secondary", set("Title", "x"))), 200, "Suppressed", "Connected")
	if r := post(t, uri, mpns.KindToast, "", "", []byte("not xml")); r.Code != 400 {
		t.Fatalf("bad toast: %d", r.Code)
	}
	// A multicast counts once per channel.
	mc, _ := json.Marshal(server.MulticastRequest{Channels: []string{uri, uri + "gone"}, Payload: string(toastBody("multi"))})
	req, _ := http.NewRequest(http.MethodPost, base+server.MulticastPath, bytes.NewReader(mc))
	req.Header.Set(mpns.HeaderTarget, mpns.TargetToast)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("multicast: %s", resp.Status)
	}
	got = append(got, d.collect(1)...)

	fams = scrape(t, base)
	counts := []struct {
		kind, status, code string
		want               float64
	}{
		{"toast", "Received", "200", 4},
		{"toast", "Dropped", "404", 2},
		{"tile", "Suppressed", "200", 1},
		{"toast", "none", "400", 1},
		{"raw", "Received", "200", 0},
		{"tile", "Received", "200", 0},
	}
	for _, c := range counts {
		if v := notifications(fams, c.kind, c.status, c.code); v != c.want {
			t.Errorf("notifications{kind=%s,status=%s,code=%s} = %v, want %v", c.kind, c.status, c.code, v, c.want)
		}
	}
	if v := fams.Value("herald_service_queued_notifications"); v != 4 {
		t.Errorf("queued = %v, want the 4 unacknowledged", v)
	}
	// Delivered the moment they were accepted, on a clock that stood still.
	if n, sum := fams.Histogram("herald_service_accept_to_deliver_seconds"); n != 4 || sum != 0 {
		t.Errorf("accept-to-deliver count %d sum %v, want 4 and 0", n, sum)
	}
	// Every commit was observed, and the four accepted notifications
	// were among the writes they carried.
	if n, sum := fams.Histogram("herald_service_store_commit_requests"); n <= 0 || sum < 4 || n != int64(svc.Store.(*sqlitestore.Store).Commits()) {
		t.Errorf("commit requests: %d commits carrying %v, want %d commits carrying at least 4", n, sum, svc.Store.(*sqlitestore.Store).Commits())
	}
	if n, _ := fams.Histogram("herald_service_store_commit_seconds"); n != int64(svc.Store.(*sqlitestore.Store).Commits()) {
		t.Errorf("commit latency count %d, want %d", n, svc.Store.(*sqlitestore.Store).Commits())
	}
	if n, _ := fams.Histogram("herald_service_ack_latency_seconds"); n != 0 {
		t.Errorf("ack latency observed %d times before any ack", n)
	}

	// The ack covering the last frame, 2 s after it was written.
	ts.clk.Advance(2 * time.Second)
	d.ack(got[len(got)-1].Seq)
	waitQueueEmpty(t, ts, d.id)
	fams = scrape(t, base)
	if n, sum := fams.Histogram("herald_service_ack_latency_seconds"); n != 1 || sum != 2 {
		t.Errorf("ack latency count %d sum %v, want 1 and 2 s", n, sum)
	}
	if v := fams.Value("herald_service_queued_notifications"); v != 0 {
		t.Errorf("queued after the ack = %v, want 0", v)
	}

	// A toast of the 450 s class waits for its deadline.
	accepted := ts.clk.Now()
	wantStatus(t, post(t, uri, mpns.KindToast, class(mpns.KindToast, mpns.Within450s), "late", toastBody("later")), 200, "Received", "Connected")
	ts.waitTimer(accepted.Add(450 * time.Second))
	ts.clk.Advance(450 * time.Second)
	d.collect(1)
	fams = scrape(t, base)
	if n, sum := fams.Histogram("herald_service_accept_to_deliver_seconds"); n != 5 || sum != 450 {
		t.Errorf("accept-to-deliver count %d sum %v, want 5 and 450 s", n, sum)
	}

	// A known device coming back is a reconnect.
	d.disconnect()
	if v := scrape(t, base).Value("herald_service_connected_devices"); v != 0 {
		t.Errorf("connected after disconnect = %v", v)
	}
	d.connect(got[len(got)-1].Seq)
	fams = scrape(t, base)
	for _, w := range []struct {
		name string
		want float64
	}{
		{"herald_service_connected_devices", 1},
		{"herald_service_device_connects_total", 2},
		{"herald_service_device_reconnects_total", 1},
	} {
		if got := fams.Value(w.name); got != w.want {
			t.Errorf("after reconnect %s = %v, want %v", w.name, got, w.want)
		}
	}
}

// TestMetricsWithoutStore: a scrape while the database is gone still
// answers, with everything but the queue count.
func TestMetricsWithoutStore(t *testing.T) {
	ts, svc := startRunService(t)
	ts.enrol()
	svc.Store.Close()
	fams := scrape(t, svc.URL())
	if v := fams.Value("herald_service_device_connects_total"); v != 1 {
		t.Errorf("connects = %v, want 1", v)
	}
	if _, ok := fams["herald_service_queued_notifications"]; ok {
		t.Error("queue length reported from a closed store")
	}
}

// TestMetricsPerServer: two servers in one process keep separate figures.
func TestMetricsPerServer(t *testing.T) {
	a, svcA := startRunService(t)
	_, svcB := startRunService(t)
	a.enrol()
	a.enrol()
	if v := scrape(t, svcA.URL()).Value("herald_service_connected_devices"); v != 2 {
		t.Errorf("a: connected = %v, want 2", v)
	}
	if v := scrape(t, svcB.URL()).Value("herald_service_device_connects_total"); v != 0 {
		t.Errorf("b: connects = %v, want 0", v)
	}
}
