package server_test

import (
	"testing"

	"github.com/heraldpush/herald/mpns"
)

// TestStoreCallsObserved: every store call the service makes is timed by
// operation, whatever the backend; answers about the data (an unknown
// token) are not failures, and calls to a store gone under the service
// are.
func TestStoreCallsObserved(t *testing.T) {
	ts, svc := startRunService(t)
	base := svc.URL()
	d := ts.enrol()
	_, uri := d.register("app", true, false)
	for i := range 3 {
		wantStatus(t, post(t, uri, mpns.KindToast, "", "m"+itoa(i), toastBody("hi")), 200, "Received", "Connected")
	}
	d.collect(3)
	wantStatus(t, post(t, uri+"gone", mpns.KindToast, "", "", toastBody("x")), 404, "Dropped", "Disconnected")

	fams := scrape(t, base)
	for _, c := range []struct {
		op  string
		min int64
	}{
		{"enqueue", 3},
		{"channel_by_token", 4},
		{"create_device", 1},
		{"create_channel", 1},
	} {
		if n, _ := fams.Histogram("herald_service_store_seconds", "op", c.op); n < c.min {
			t.Errorf("store_seconds{op=%s} count %d, want at least %d", c.op, n, c.min)
		}
		if v := fams.Value("herald_service_store_errors_total", "op", c.op); v != 0 {
			t.Errorf("store_errors_total{op=%s} = %v before any failure", c.op, v)
		}
	}

	// The store closed under the service: a sender gets 503, and the
	// failed calls are counted.
	svc.Store.Close()
	if r := post(t, uri, mpns.KindToast, "", "late", toastBody("x")); r.Code != 503 {
		t.Fatalf("with the store closed: %d, want 503", r.Code)
	}
	fams = scrape(t, base)
	failed := 0.0
	for _, op := range []string{"channel_by_token", "device_status", "enqueue"} {
		failed += fams.Value("herald_service_store_errors_total", "op", op)
	}
	if failed < 1 {
		t.Errorf("no failed store call counted after a 503 from a closed store")
	}
}
