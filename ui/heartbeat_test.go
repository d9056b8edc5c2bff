package ui_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/natsim"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/ui"
)

// The page's state carries the heartbeat line: interval, whether it has
// settled, the ceiling in force, the next upward probe and the day's failed
// probes, under the names app.js reads.
func TestStateHeartbeat(t *testing.T) {
	tests := []struct {
		name string
		// start returns the daemon and the heartbeat object its page's
		// state must carry.
		start func(t *testing.T) (*testenv.Daemon, map[string]any)
	}{
		{"learning", func(t *testing.T) (*testenv.Daemon, map[string]any) {
			svc := testenv.Service(t, "", server.ServeConfig{})
			d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
			// Not settled, so no upward probe is due: next_probe is absent,
			// not a zero time the page would print as 1 January year 1.
			return d, map[string]any{"interval": "4m0s", "settled": false, "probing": false, "ceiling": "1h58m0s", "failed_probes_last_day": 0.0}
		}},
		{"settled behind a 5-minute NAT", func(t *testing.T) (*testenv.Daemon, map[string]any) {
			d := settled(t, 5*time.Minute)
			learned := d.Link().Stats().Learned
			if learned.NextProbe.IsZero() {
				t.Fatalf("settled with no upward probe planned: %+v", learned)
			}
			next, err := json.Marshal(learned.NextProbe)
			if err != nil {
				t.Fatal(err)
			}
			var nextJSON string
			json.Unmarshal(next, &nextJSON)
			// 4m answered, 6m twice and 5m dead, 4m30s answered: three
			// failed probes, each a reconnect the page owes the user.
			return d, map[string]any{"interval": learned.Interval.String(), "settled": true, "probing": false, "ceiling": "1h58m0s",
				"next_probe": nextJSON, "failed_probes_last_day": 3.0}
		}},
		{"probing upward behind a 5-minute NAT", func(t *testing.T) (*testenv.Daemon, map[string]any) {
			d, drv := settledDriven(t, 5*time.Minute)
			// Beat on at the proven interval until the next probe is armed.
			for beats := 0; d.Link().Stats().Learned.Probe == 0; beats++ {
				if beats == 100 {
					t.Fatalf("no upward probe after 100 heartbeats: %+v", d.Link().Stats().Learned)
				}
				drv.Beat()
			}
			learned := d.Link().Stats().Learned
			if learned.Interval != learned.Probe || learned.Probe <= learned.Good {
				t.Fatalf("probing, but not with a longer interval than the proven one: %+v", learned)
			}
			// While a probe is out, no next one is planned.
			return d, map[string]any{"interval": learned.Probe.String(), "settled": true, "probing": true,
				"ceiling": "1h58m0s", "failed_probes_last_day": 3.0}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, want := tt.start(t)
			got := pageHeartbeat(t, d)
			if next, ok := got["next_probe"].(string); ok {
				// Compare instants: the daemon's clock and its database
				// may name the same time in different zones.
				g, err1 := time.Parse(time.RFC3339Nano, next)
				w, err2 := time.Parse(time.RFC3339Nano, want["next_probe"].(string))
				if err1 != nil || err2 != nil || !g.Equal(w) {
					t.Fatalf("next_probe %q, want %q", next, want["next_probe"])
				}
				got["next_probe"] = want["next_probe"]
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("the page's heartbeat %v, want %v", got, want)
			}
		})
	}
}

// settled starts a daemon behind a simulated NAT of the given idle timeout,
// on the fake clock, and drives its heartbeats until the link settles.
func settled(t *testing.T, natTimeout time.Duration) *testenv.Daemon {
	t.Helper()
	d, _ := settledDriven(t, natTimeout)
	return d
}

// settledDriven is settled, with the driver that can beat on.
func settledDriven(t *testing.T, natTimeout time.Duration) (*testenv.Daemon, *natsim.Driver) {
	t.Helper()
	const timeout = 15 * time.Second
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	svc := testenv.Service(t, "", server.ServeConfig{Server: server.Config{Clock: fc}})
	nat, err := natsim.New(svc.Addr().String(), natTimeout, fc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nat.Close() })
	cfg := daemon.Config{Service: nat.URL(), Clock: fc, NoNetworkWatch: true,
		Network: func(context.Context) (string, error) { return "home", nil }}
	cfg.Link.HeartbeatTimeout = timeout
	cfg.Link.Rand = func() float64 { return 0.5 }
	cfg.History.Every = -1 // the driver expects the heartbeat's timer alone
	d := testenv.StartDaemon(t, cfg)
	drv := &natsim.Driver{T: t, Clock: fc, NAT: nat, Link: d.Link(), Timeout: timeout}
	for beats := 0; !d.Link().Stats().Learned.Settled; beats++ {
		if beats == 8 {
			t.Fatalf("not settled after 8 heartbeats: %+v", d.Link().Stats().Learned)
		}
		drv.Beat()
	}
	return d, drv
}

// pageHeartbeat reads the phone's state as the page does, over loopback
// HTTP with its session, and returns its heartbeat object.
func pageHeartbeat(t *testing.T, d *testenv.Daemon) map[string]any {
	t.Helper()
	u := ui.New(ui.Config{Phones: &ui.Single{D: d.Daemon}, Logger: testenv.Logger(t)})
	srv := httptest.NewServer(u.Handler())
	t.Cleanup(srv.Close)
	registerKey(t, srv.URL, u.Key())
	resp, err := pageFor(t, srv.URL).client.Get(srv.URL + "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Heartbeat map[string]any `json:"heartbeat"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("state: %d %v", resp.StatusCode, err)
	}
	return st.Heartbeat
}
