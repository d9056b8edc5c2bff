package main

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/platform"
)

// The configuration's defaults are the link's.
func TestHeartbeatCeilingDefaults(t *testing.T) {
	if platform.DefaultHeartbeatCeiling != channel.DefaultHeartbeatCeiling || platform.DefaultMeteredHeartbeatCeiling != channel.MeteredHeartbeatCeiling {
		t.Fatalf("platform's ceilings %v/%v, the link's %v/%v", platform.DefaultHeartbeatCeiling, platform.DefaultMeteredHeartbeatCeiling,
			channel.DefaultHeartbeatCeiling, channel.MeteredHeartbeatCeiling)
	}
}

func TestHeartbeatCeilingFlag(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "none.toml")
	tests := []struct {
		args    []string
		want    time.Duration
		wantErr string
	}{
		{nil, platform.DefaultHeartbeatCeiling, ""},
		{[]string{"--heartbeat-ceiling", "3h"}, 3 * time.Hour, ""},
		{[]string{"--heartbeat-ceiling", "30s"}, 0, "--heartbeat-ceiling 30s"},
		{[]string{"--heartbeat-ceiling", "0"}, 0, "--heartbeat-ceiling 0s"},
		{[]string{"--heartbeat-ceiling", "25h"}, 0, "--heartbeat-ceiling 25h0m0s"},
		{[]string{"--heartbeat-ceiling", "soon"}, 0, "invalid value"},
	}
	for _, tt := range tests {
		s, _, err := loadSettings("run", append([]string{"--config", conf}, tt.args...))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || s.HeartbeatCeiling.Duration != tt.want || s.MeteredHeartbeatCeiling.Duration != platform.DefaultMeteredHeartbeatCeiling {
			t.Errorf("%v: ceiling %v, metered %v, %v; want %v", tt.args, s.HeartbeatCeiling, s.MeteredHeartbeatCeiling, err, tt.want)
		}
	}
}

// On a metered network the lower of the two ceilings applies; on one that
// is not, or where detection fails (NetworkCost reports not metered and
// nothing told, docs/power.md), the configured ceiling holds.
func TestMeteredCeiling(t *testing.T) {
	ceilings := func(configured, metered time.Duration) platform.Config {
		return platform.Config{HeartbeatCeiling: platform.Duration{Duration: configured}, MeteredHeartbeatCeiling: platform.Duration{Duration: metered}}
	}
	tests := []struct {
		name    string
		c       platform.Config
		metered bool
		how     string
		want    time.Duration
	}{
		{"metered by NetworkManager", ceilings(118*time.Minute, 28*time.Minute), true, platform.MeteredByNetworkManager, 28 * time.Minute},
		{"cellular interface", ceilings(118*time.Minute, 28*time.Minute), true, platform.MeteredByInterface, 28 * time.Minute},
		{"metered, configured lower", ceilings(10*time.Minute, 28*time.Minute), true, platform.MeteredByNetworkManager, 10 * time.Minute},
		{"metered, metered ceiling raised", ceilings(45*time.Minute, 3*time.Hour), true, platform.MeteredByNetworkManager, 45 * time.Minute},
		{"not metered by NetworkManager", ceilings(118*time.Minute, 28*time.Minute), false, platform.MeteredByNetworkManager, 118 * time.Minute},
		{"wired interface", ceilings(3*time.Hour, 28*time.Minute), false, platform.MeteredByInterface, 3 * time.Hour},
		{"detection failed", ceilings(118*time.Minute, 28*time.Minute), false, "", 118 * time.Minute},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked int
			detect := func(context.Context) (bool, string) { asked++; return tt.metered, tt.how }
			ceiling := meteredCeiling(tt.c, detect, log)
			// Asked on every connection, not once: a network may become
			// metered (a phone's hotspot) while the daemon runs.
			for i := 1; i <= 2; i++ {
				if got := ceiling(context.Background()); got != tt.want || asked != i {
					t.Fatalf("call %d: ceiling %v after %d detections, want %v after %d", i, got, asked, tt.want, i)
				}
			}
		})
	}
	// The platform's own detector, as the daemon wires it, never raises
	// the configured ceiling whatever this host's network is.
	if got := meteredCeiling(ceilings(10*time.Minute, 28*time.Minute), platform.NetworkCost{}.Metered, log)(context.Background()); got != 10*time.Minute {
		t.Fatalf("host's network: ceiling %v, want the configured 10m", got)
	}
}

// TestStatusShowsProbes: herald status shows the learned interval, its
// ceiling, the next upward probe and the day's failed probes.
func TestStatusShowsProbes(t *testing.T) {
	next := time.Date(2026, 1, 1, 6, 16, 20, 0, time.Local)
	tests := []struct {
		st   app.Status
		want []string
	}{
		{app.Status{Heartbeat: "29m44.531s", HeartbeatSettled: true, HeartbeatCeiling: "1h58m0s", NextProbe: &next, FailedProbes: 3, LearnedIdle: "≥ 29m44.531s, < 30m4.375s"},
			[]string{"heartbeat:   29m44.531s (settled), ceiling 1h58m0s\n", "nat idle:    ≥ 29m44.531s, < 30m4.375s\n", "next probe:  2026-01-01 06:16:20; 3 failed in 24 h\n"}},
		{app.Status{Heartbeat: "59m29.062s", HeartbeatSettled: true, HeartbeatProbing: true, HeartbeatCeiling: "1h58m0s"},
			[]string{"heartbeat:   59m29.062s (probing), ceiling 1h58m0s\n", "next probe:  -; 0 failed in 24 h\n"}},
		{app.Status{Heartbeat: "4m0s"}, []string{"heartbeat:   4m0s (learning)\n"}},
	}
	for _, tt := range tests {
		var b strings.Builder
		printStatus(&b, serviceState{Name: "herald"}, "/run/herald.sock", true, tt.st, nil)
		for _, w := range tt.want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("status lacks %q:\n%s", w, b.String())
			}
		}
	}
}
