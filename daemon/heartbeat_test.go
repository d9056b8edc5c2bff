package daemon_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/natsim"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// TestLearnedHeartbeatSurvivesRestart learns a 5-minute NAT's timeout, stops
// the daemon and starts it again on the same data: on the same network it
// starts at the learned interval, on another it starts afresh.
func TestLearnedHeartbeatSurvivesRestart(t *testing.T) {
	const timeout = 15 * time.Second
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	svc := testenv.Service(t, "", server.ServeConfig{Server: server.Config{Clock: fc}})
	nat, err := natsim.New(svc.Addr().String(), 5*time.Minute, fc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nat.Close() })
	data := t.TempDir()
	start := func(network string) *testenv.Daemon {
		t.Helper()
		cfg := daemon.Config{Service: nat.URL(), DataDir: data, Clock: fc, NoNetworkWatch: true,
			Network: func(context.Context) (string, error) { return network, nil }}
		cfg.Link.HeartbeatTimeout = timeout
		cfg.Link.Rand = func() float64 { return 0.5 }
		cfg.History.Every = -1 // the driver expects the heartbeat's timer alone
		return testenv.StartDaemon(t, cfg)
	}

	d := start("home")
	drv := &natsim.Driver{T: t, Clock: fc, NAT: nat, Link: d.Link(), Timeout: timeout}
	for probes := 0; !d.Link().Stats().Learned.Settled; probes++ {
		if probes == 8 {
			t.Fatalf("not settled after 8 probes: %+v", d.Link().Stats().Learned)
		}
		drv.Beat()
	}
	learned := d.Link().Stats().Learned
	st, err := d.Client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Network != "home" || !st.HeartbeatSettled || st.Heartbeat != learned.Interval.String() || st.LearnedIdle == "" || st.Wakeups.Heartbeats == 0 {
		t.Fatalf("status after learning: %+v", st)
	}
	// 4m (answered), 6m twice and 5m (dead), 4m30s (answered).
	if st.HeartbeatCeiling != "1h58m0s" || st.NextProbe == nil || !st.NextProbe.Equal(learned.NextProbe) || st.FailedProbes != 3 || st.HeartbeatProbing {
		t.Fatalf("status's probes after learning: ceiling %q, next %v, %d failed, probing %v", st.HeartbeatCeiling, st.NextProbe, st.FailedProbes, st.HeartbeatProbing)
	}
	d.Stop()

	tests := []struct {
		network string
		want    time.Duration
		settled bool
	}{
		{"home", learned.Interval, true},
		{"cafe", 4 * time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.network, func(t *testing.T) {
			d := start(tt.network)
			defer d.Stop()
			st := d.Link().Stats()
			if st.Heartbeat != tt.want || st.Learned.Settled != tt.settled {
				t.Fatalf("after restart on %s: heartbeat %v settled %v, want %v %v", tt.network, st.Heartbeat, st.Learned.Settled, tt.want, tt.settled)
			}
			// The next upward probe and the day's failures are remembered
			// too, so a restart neither probes early nor forgets a cost.
			if tt.settled && !st.Learned.Equal(learned) {
				t.Fatalf("after restart on %s: learned %+v, was %+v", tt.network, st.Learned, learned)
			}
			if tt.settled && (st.Learned.NextProbe.IsZero() || st.FailedLastDay == 0) {
				t.Fatalf("after restart on %s: next probe %v, %d failed", tt.network, st.Learned.NextProbe, st.FailedLastDay)
			}
			// And it holds: the first heartbeat at that interval is answered.
			drv := &natsim.Driver{T: t, Clock: fc, NAT: nat, Link: d.Link(), Timeout: timeout}
			if b := drv.Beat(); !b.Answered || b.Interval != tt.want {
				t.Fatalf("first heartbeat after restart: %+v", b)
			}
		})
	}
}

// TestNetworkCeiling: the daemon's per-network ceiling (a metered network's)
// bounds what the link learns behind a NAT that keeps flows for ever.
func TestNetworkCeiling(t *testing.T) {
	const timeout = 15 * time.Second
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	svc := testenv.Service(t, "", server.ServeConfig{Server: server.Config{Clock: fc}})
	nat, err := natsim.New(svc.Addr().String(), 0, fc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nat.Close() })
	cfg := daemon.Config{Service: nat.URL(), DataDir: t.TempDir(), Clock: fc, NoNetworkWatch: true,
		Network:          func(context.Context) (string, error) { return "cell", nil },
		HeartbeatCeiling: func(context.Context) time.Duration { return 10 * time.Minute }}
	cfg.Link.HeartbeatTimeout = timeout
	cfg.Link.Rand = func() float64 { return 0.5 }
	cfg.History.Every = -1
	d := testenv.StartDaemon(t, cfg)
	drv := &natsim.Driver{T: t, Clock: fc, NAT: nat, Link: d.Link(), Timeout: timeout}
	for beats := 0; !d.Link().Stats().Learned.Settled; beats++ {
		if beats > 6 {
			t.Fatalf("not settled: %+v", d.Link().Stats().Learned)
		}
		drv.Beat()
	}
	st, err := d.Client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Heartbeat != "10m0s" || st.HeartbeatCeiling != "10m0s" || st.NextProbe != nil {
		t.Fatalf("under a 10-minute network ceiling: heartbeat %s, ceiling %s, next probe %v", st.Heartbeat, st.HeartbeatCeiling, st.NextProbe)
	}
}
