package platform

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestServiceStatusString(t *testing.T) {
	tests := []struct {
		s    ServiceStatus
		want string
	}{
		{StatusUnknown, "unknown"},
		{StatusNotInstalled, "not installed"},
		{StatusStopped, "stopped"},
		{StatusRunning, "running"},
		{ServiceStatus(42), "unknown"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.want {
			t.Errorf("ServiceStatus(%d).String() = %q, want %q", int(tt.s), got, tt.want)
		}
	}
}

func TestNewServiceValidates(t *testing.T) {
	noop := func(context.Context) error { return nil }
	tests := []struct {
		name    string
		opts    ServiceOptions
		wantErr error
	}{
		{"empty name", ServiceOptions{}, ErrInvalidServiceName},
		{"path in name", ServiceOptions{Name: "a/b"}, ErrInvalidServiceName},
		{"RunAs with User", ServiceOptions{Name: "herald", User: true, RunAs: "herald"}, ErrRunAsUserService},
		{"bad RunAs", ServiceOptions{Name: "herald", RunAs: "a b"}, ErrInvalidRunAs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewService(tt.opts, noop); !errors.Is(err, tt.wantErr) {
				t.Errorf("NewService = %v, want %v", err, tt.wantErr)
			}
		})
	}
	s, err := NewService(ServiceOptions{Name: "herald-test-unused"}, noop)
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	if s.Platform() == "" {
		t.Error("Platform() is empty")
	}
	if err := (&Service{}).Run(); !errors.Is(err, ErrNoRun) {
		t.Errorf("Run without a run function = %v, want %v", err, ErrNoRun)
	}
	if err := s.Control("explode"); !errors.Is(err, ErrUnknownAction) {
		t.Errorf("Control(explode) = %v, want %v", err, ErrUnknownAction)
	}
	st, err := s.Status()
	if err != nil || st != StatusNotInstalled {
		// Uninstalling is only safe to try when the manager said so.
		t.Fatalf("Status of a service never installed = %v, %v; want %v", st, err, StatusNotInstalled)
	}
	// Root is told there is nothing to uninstall; anyone else, on a
	// service manager whose system services only root controls, that
	// they need root, before anything is tried.
	want := ErrNotInstalled
	if needsRoot(s.Platform()) && os.Geteuid() != 0 {
		want = ErrNeedsRoot
	}
	if err := s.Control("uninstall"); !errors.Is(err, want) {
		t.Errorf("Control(uninstall) of a service never installed, as uid %d on %s = %v, want %v", os.Geteuid(), s.Platform(), err, want)
	}
}

// needsRoot reports whether only root controls a system service on
// platform (every Unix service manager Herald drives).
func needsRoot(platform string) bool {
	return platform == platformSysV || strings.HasPrefix(platform, "linux-") || strings.HasPrefix(platform, "darwin-")
}

// The service manager's Start and Stop, as kardianos calls them.
func TestServiceStartStop(t *testing.T) {
	tests := []struct {
		name    string
		run     func(ctx context.Context) error
		grace   time.Duration
		wantErr error // from Stop
		wantRun error // run's error as Run reports it
	}{
		{
			name:  "returns nil when cancelled",
			run:   func(ctx context.Context) error { <-ctx.Done(); return nil },
			grace: time.Minute,
		},
		{
			name:  "context.Canceled after stop is a clean stop",
			run:   func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
			grace: time.Minute,
		},
		{
			name:    "error while stopping is kept",
			run:     func(ctx context.Context) error { <-ctx.Done(); return os.ErrClosed },
			grace:   time.Minute,
			wantRun: os.ErrClosed,
		},
		{
			name:    "run ignoring ctx times out",
			run:     func(ctx context.Context) error { time.Sleep(time.Second); return nil },
			grace:   20 * time.Millisecond,
			wantErr: ErrStopTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := stopGrace
			stopGrace = tt.grace
			t.Cleanup(func() { stopGrace = old })
			s, err := NewService(ServiceOptions{Name: "herald-test-unused"}, tt.run)
			if err != nil {
				t.Fatal(err)
			}
			p := (*program)(s)
			if err := p.Start(nil); err != nil {
				t.Fatalf("Start: %v", err)
			}
			if err := p.Stop(nil); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Stop = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			s.mu.Lock()
			got := s.runErr
			s.mu.Unlock()
			if !errors.Is(got, tt.wantRun) || (tt.wantRun == nil && got != nil) {
				t.Errorf("run error = %v, want %v", got, tt.wantRun)
			}
		})
	}
}

func TestSysvSafe(t *testing.T) {
	tests := []struct {
		exe  string
		args []string
		ok   bool
	}{
		{"/usr/bin/herald", []string{"run", "--data", "/var/lib/herald", "--ui=127.0.0.1:8790"}, true},
		{"/opt/my apps/herald", nil, false},
		{"/usr/bin/herald", []string{"a b"}, false},
		{"/usr/bin/herald", []string{"$(reboot)"}, false},
		{"/usr/bin/herald", []string{"*"}, false},
		{"/usr/bin/herald", []string{`"`}, false},
		{"/usr/bin/herald", []string{""}, false},
	}
	for _, tt := range tests {
		err := sysvSafe(tt.exe, tt.args)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrUnsafeArgument)) {
			t.Errorf("sysvSafe(%q, %q) = %v, want ok=%v", tt.exe, tt.args, err, tt.ok)
		}
	}
}

func TestRemoveSysvLinks(t *testing.T) {
	etc := t.TempDir()
	for _, d := range []string{"init.d", "rc0.d", "rc1.d", "rc2.d", "rc3.d", "rc5.d", "rc6.d"} {
		if err := os.Mkdir(filepath.Join(etc, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(etc, "init.d", "herald")
	other := filepath.Join(etc, "init.d", "herald-other")
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(etc, name)); err != nil {
			t.Fatal(err)
		}
	}
	ours := []string{"rc2.d/S50herald", "rc3.d/S50herald", "rc5.d/S01herald", "rc0.d/K02herald", "rc6.d/K02herald"}
	for _, l := range ours {
		link(script, l)
	}
	link("../init.d/herald", "rc1.d/K01herald")
	ours = append(ours, "rc1.d/K01herald")
	link(other, "rc2.d/S50herald-other")
	link("/etc/init.d/herald", "rc3.d/S60herald") // same name, someone else's /etc
	if err := os.WriteFile(filepath.Join(etc, "rc5.d", "S02herald"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	if err := removeSysvLinks(etc, "herald"); err != nil {
		t.Fatalf("removeSysvLinks: %v", err)
	}
	for _, l := range ours {
		if _, err := os.Lstat(filepath.Join(etc, l)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there (%v)", l, err)
		}
	}
	for _, l := range []string{"rc2.d/S50herald-other", "rc3.d/S60herald", "rc5.d/S02herald"} {
		if _, err := os.Lstat(filepath.Join(etc, l)); err != nil {
			t.Errorf("%s removed: %v", l, err)
		}
	}
}

func TestSysvStatus(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("System V is Unix")
	}
	etc := t.TempDir()
	if err := os.Mkdir(filepath.Join(etc, "init.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		script  string // "" = not installed
		want    ServiceStatus
		wantErr bool
	}{
		{"not installed", "", StatusNotInstalled, false},
		{"running", "echo Running", StatusRunning, false},
		{"stopped exits 1", "echo Stopped; exit 1", StatusStopped, false},
		{"broken", "echo oops >&2; exit 3", StatusUnknown, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "svc" + string(rune('a'+i))
			if tt.script != "" {
				body := "#!/bin/sh\n[ \"$1\" = status ] || exit 9\n" + tt.script + "\n"
				if err := os.WriteFile(filepath.Join(etc, "init.d", name), []byte(body), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			got, err := sysvStatus(etc, name)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("sysvStatus = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
