package natsstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/natsstore"
)

// cutWait bounds how long a test waits for a cut to be noticed or healed:
// a failsafe far below the 4 minutes nats.go's default pings would take,
// never what the test measures.
const cutWait = 30 * time.Second

// gauge reads one series of the store's metrics ("" label for none).
func gauge(t *testing.T, reg *prometheus.Registry, name, copyName string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if copyName != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != copyName) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// A node cut off from NATS by a network that holds its packets (no reset,
// no refusal: only silence) says it is not ready within a few pings, so
// the service answers 503 instead of Received and hands its devices over;
// once the cut heals it reconnects and is ready again. /metrics shows the
// connection's state and its losses and reconnections throughout.
func TestCutOffNodeIsNotReady(t *testing.T) {
	srv := natstest.Run(t)
	proxy := natstest.NewProxy(t, strings.TrimPrefix(srv.URL(), "nats://"))
	s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: proxy.URL(), Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	want := func(name string, v float64) {
		t.Helper()
		if got, _ := gauge(t, reg, name, ""); got != v {
			t.Fatalf("%s = %v, want %v", name, got, v)
		}
	}
	if err := s.Ready(); err != nil {
		t.Fatal(err)
	}
	want("herald_service_nats_connected", 1)
	want("herald_service_nats_disconnects_total", 0)
	if s.FailingOver(time.Hour) {
		t.Fatal("failing over before any fault")
	}

	proxy.Stall()
	cut := time.Now()
	t.Cleanup(proxy.Heal) // so that a failure does not leave the close waiting on the cut
	// A queue read meanwhile is retried until its deadline, and says so:
	// its slowness is a failover's, not load's.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err = s.Pending(ctx, "during-cut", 0)
	cancel()
	if err == nil {
		t.Fatal("a read through a stalled connection succeeded")
	}
	if !s.FailingOver(time.Hour) {
		t.Fatalf("a read retried through a cut (%v), and FailingOver is false", err)
	}
	testenv.Eventually(t, cutWait, "the cut noticed", func() bool { return s.Ready() != nil })
	t.Logf("cut off noticed after %v", time.Since(cut).Round(100*time.Millisecond))
	if err := s.Ready(); !errors.Is(err, store.ErrNotReady) {
		t.Fatalf("Ready while cut off: %v, want ErrNotReady", err)
	}
	want("herald_service_nats_connected", 0)
	want("herald_service_nats_disconnects_total", 1)

	proxy.Heal()
	testenv.Eventually(t, cutWait, "reconnected after the cut healed", func() bool { return s.Ready() == nil })
	want("herald_service_nats_connected", 1)
	want("herald_service_nats_reconnects_total", 1)
	if err := s.CreateDevice(context.Background(), store.Device{ID: "after-cut"}); err != nil {
		t.Fatalf("a write after the cut healed: %v", err)
	}
}

// Each watched copy shows how many keys it holds, that it caught up with
// its bucket, how long ago its watch last brought something, and the
// lag of the last event: a copy whose watch stalls shows it.
func TestWatchedCopiesMetrics(t *testing.T) {
	s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: natstest.Run(t).URL(), Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(s)
	for _, c := range []string{"devices", "channels", "presence"} {
		testenv.Eventually(t, cutWait, c+" copy caught up", func() bool {
			v, _ := gauge(t, reg, "herald_service_watched_caught_up", c)
			return v == 1
		})
		if _, ok := gauge(t, reg, "herald_service_watched_last_event_age_seconds", c); !ok {
			t.Fatalf("no last event age for the %s copy", c)
		}
	}
	if v, _ := gauge(t, reg, "herald_service_watched_keys", "devices"); v != 0 {
		t.Fatalf("devices copy holds %v keys before any device", v)
	}
	for _, id := range []string{"d1", "d2"} {
		if err := s.CreateDevice(context.Background(), store.Device{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, cutWait, "both devices in the copy", func() bool {
		v, _ := gauge(t, reg, "herald_service_watched_keys", "devices")
		return v == 2
	})
	lag, ok := gauge(t, reg, "herald_service_watched_lag_seconds", "devices")
	if !ok || lag < 0 || lag > cutWait.Seconds() {
		t.Fatalf("devices copy lag %v (present %v)", lag, ok)
	}
	age, _ := gauge(t, reg, "herald_service_watched_last_event_age_seconds", "devices")
	if age < 0 || age > cutWait.Seconds() {
		t.Fatalf("devices copy last event age %v", age)
	}
}
