package platform

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// Where there is no systemd, or no root, each refusal says why and what
// to do instead.
func TestCheckControl(t *testing.T) {
	found := func(string) (string, error) { return "/usr/sbin/service", nil }
	missing := func(string) (string, error) { return "", exec.ErrNotFound }
	tests := []struct {
		name     string
		platform string
		user     bool
		euid     int
		action   string
		look     func(string) (string, error)
		want     error
		hints    []string
	}{
		{"user service on System V", platformSysV, true, 1000, "install", found, ErrUserServiceUnsupported,
			[]string{"System V", "sudo herald install", "herald run", "--print"}},
		{"user service on System V as root", platformSysV, true, 0, "start", found, ErrUserServiceUnsupported, nil},
		{"system install as a user, System V", platformSysV, false, 1000, "install", found, ErrNeedsRoot,
			[]string{"uid 1000", "sudo", "--user", "herald run"}},
		{"system start as a user, systemd", "linux-systemd", false, 1000, "start", found, ErrNeedsRoot, nil},
		{"system install as a user, launchd", "darwin-launchd", false, 501, "install", found, ErrNeedsRoot, nil},
		{"start without service(8)", platformSysV, false, 0, "start", missing, ErrNoServiceCommand,
			[]string{"/etc/init.d/herald start", "herald run"}},
		{"restart without service(8)", platformSysV, false, 0, "restart", missing, ErrNoServiceCommand, []string{"/etc/init.d/herald restart"}},
		{"install without service(8) is fine", platformSysV, false, 0, "install", missing, nil, nil},
		{"root on System V", platformSysV, false, 0, "start", found, nil, nil},
		{"user service on systemd", "linux-systemd", true, 1000, "install", found, nil, nil},
		{"Windows", "windows-service", false, -1, "install", found, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkControl(tt.platform, ServiceOptions{Name: "herald", User: tt.user}, tt.euid, tt.action, tt.look)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("checkControl = %v, want %v", err, tt.want)
			}
			for _, h := range tt.hints {
				if !strings.Contains(err.Error(), h) {
					t.Errorf("%q lacks %q", err, h)
				}
			}
		})
	}
}
