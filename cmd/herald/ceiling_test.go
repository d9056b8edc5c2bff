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

// On a network that is not metered the configured ceiling holds; the
// metered one never raises it.
func TestMeteredCeiling(t *testing.T) {
	c := platform.Config{HeartbeatCeiling: platform.Duration{Duration: 10 * time.Minute}, MeteredHeartbeatCeiling: platform.Duration{Duration: 28 * time.Minute}}
	got := meteredCeiling(c, slog.New(slog.NewTextHandler(io.Discard, nil)))(context.Background())
	if got != 10*time.Minute {
		t.Fatalf("ceiling %v, want the configured 10m (whether or not this host's network is metered)", got)
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
