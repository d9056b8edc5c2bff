package ui_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/ui"
)

// TestDaemonMetrics scrapes the UI address of two emulated phones after
// real notifications went through the service, and checks each phone's
// figures against what was sent to it and what its link reports.
func TestDaemonMetrics(t *testing.T) {
	e := newEnv(t, 2)
	ch := e.open(t, "phone-0001", "demo")
	send(t, ch.URI, mpns.KindToast, (&mpns.Toast{Text1: "one"}).XML())
	send(t, ch.URI, mpns.KindToast, (&mpns.Toast{Text1: "two"}).XML())
	send(t, ch.URI, mpns.KindTile, tile("", "", "Count", "3"))
	send(t, ch.URI, mpns.KindRaw, []byte("nobody runs demo"))

	url := e.url + ui.MetricsPath
	dispatch := func(m testenv.Metrics, phone, outcome string) float64 {
		return m.Value("herald_daemon_dispatch_total", "phone", phone, "outcome", outcome)
	}
	var m testenv.Metrics
	testenv.Eventually(t, 10*time.Second, "the four notifications applied", func() bool {
		m = testenv.Scrape(t, url)
		return dispatch(m, "phone-0001", "toasts_shell")+dispatch(m, "phone-0001", "tiles_updated")+dispatch(m, "phone-0001", "raw_dropped") == 4
	})
	tests := []struct {
		phone, outcome string
		want           float64
	}{
		{"phone-0001", "toasts_shell", 2},
		{"phone-0001", "toasts_app", 0},
		{"phone-0001", "tiles_updated", 1},
		{"phone-0001", "raw_dropped", 1},
		{"phone-0001", "raw_delivered", 0},
		{"phone-0002", "toasts_shell", 0},
		{"phone-0002", "tiles_updated", 0},
	}
	for _, tt := range tests {
		if got := dispatch(m, tt.phone, tt.outcome); got != tt.want {
			t.Errorf("%s dispatch %s = %v, want %v", tt.phone, tt.outcome, got, tt.want)
		}
	}
	for _, phone := range []string{"phone-0001", "phone-0002"} {
		ls := e.emu.Phone(phone).Link().Stats()
		for _, c := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"herald_daemon_link_connected", nil, 1},
			{"herald_daemon_heartbeat_interval_seconds", nil, ls.Heartbeat.Seconds()},
			{"herald_daemon_heartbeat_ceiling_seconds", nil, channel.DefaultHeartbeatCeiling.Seconds()},
			{"herald_daemon_heartbeats_failed_last_day", nil, 0},
			{"herald_daemon_reconnects_total", nil, float64(ls.Reconnects)},
			{"herald_daemon_wakeups_last_hour", []string{"cause", "reconnect"}, float64(ls.Wakeups.Reconnects)},
			{"herald_daemon_wakeups_last_hour", []string{"cause", "heartbeat"}, float64(ls.Wakeups.Heartbeats)},
		} {
			if got := m.Value(c.name, append([]string{"phone", phone}, c.labels...)...); got != c.want {
				t.Errorf("%s %s%v = %v, want %v", phone, c.name, c.labels, got, c.want)
			}
		}
		if ls.Heartbeat <= 0 || ls.Wakeups.Reconnects < 1 {
			t.Errorf("%s: link stats %+v: want a heartbeat interval and the dial counted", phone, ls)
		}
	}
	// The process's own figures come with them.
	if m.Value("process_resident_memory_bytes") <= 0 {
		t.Error("no process_resident_memory_bytes")
	}

	// Dropping a phone's link shows on its gauge alone.
	if code, out := post(t, e.url+"/api/connectivity?phone=phone-0002", `{"online":false}`); code != http.StatusOK {
		t.Fatalf("connectivity: %d %v", code, out)
	}
	testenv.Eventually(t, 10*time.Second, "phone-0002 link down in /metrics", func() bool {
		m = testenv.Scrape(t, url)
		// The link is marked down, then counts the reconnect it schedules.
		return m.Value("herald_daemon_link_connected", "phone", "phone-0002") == 0 &&
			m.Value("herald_daemon_reconnects_total", "phone", "phone-0002") >= 1
	})
	if got := m.Value("herald_daemon_link_connected", "phone", "phone-0001"); got != 1 {
		t.Errorf("phone-0001 link_connected = %v after phone-0002 went offline", got)
	}

	// Only GET: the endpoint changes nothing.
	resp, err := http.Post(url, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d, want 405", resp.StatusCode)
	}
}

// TestDaemonMetricsSinglePhone: `herald run` has one phone, named "".
func TestDaemonMetricsSinglePhone(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	srv := httptest.NewServer(ui.New(ui.Config{Phones: ui.Single{D: d.Daemon}, Logger: testenv.Logger(t)}).Handler())
	t.Cleanup(srv.Close)
	m := testenv.Scrape(t, srv.URL+ui.MetricsPath)
	if got := m.Value("herald_daemon_link_connected", "phone", ""); got != 1 {
		t.Errorf("link_connected = %v, want 1", got)
	}
	if got := len(m["herald_daemon_link_connected"].GetMetric()); got != 1 {
		t.Errorf("%d link_connected series, want the one phone's", got)
	}
	if got := m.Value("herald_daemon_dispatch_total", "phone", "", "outcome", "toasts_shell"); got != 0 {
		t.Errorf("toasts_shell = %v before any toast", got)
	}
	d.Stop()
	if got := testenv.Scrape(t, srv.URL+ui.MetricsPath).Value("herald_daemon_link_connected", "phone", ""); got != 0 {
		t.Errorf("link_connected = %v after the daemon stopped, want 0", got)
	}
}
