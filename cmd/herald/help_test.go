package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heraldpush/herald/platform"
)

// Every subcommand's --help names its arguments, lists its flags on
// stdout and exits 0; a misspelt flag exits 2 with the usage on stderr.
func TestSubcommandHelp(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want []string // in the usage line
	}{
		{"run", []string{"--service URL", "--config FILE"}},
		{"config", []string{"--config FILE"}},
		{"emulate", []string{"--devices N", "--queue-depth N", "--daily-quota N", "--inactive-after D"}},
		{"open", []string{"open APP", "--toast", "--device NAME"}},
		{"close", []string{"close APP"}},
		{"listen", []string{"listen APP", "--background"}},
		{"channels", []string{"--app APP"}},
		{"tiles", []string{"--app APP"}},
		{"toasts", []string{"--app APP"}},
		{"pin", []string{"pin APP TILE_ID"}},
		{"power", []string{"normal|low|critical|auto"}},
		{"ui-url", []string{"--socket PATH", "--device NAME"}},
		{"status", []string{"--json", "--socket PATH"}},
		{"install", []string{"--user", "--print", "run flags"}},
		{"uninstall", []string{"--user", "--name NAME"}},
		{"start", []string{"--name NAME"}},
		{"stop", []string{"--name NAME"}},
		{"restart", []string{"--name NAME"}},
	} {
		for _, help := range []string{"--help", "-h"} {
			var stdout, stderr bytes.Buffer
			if code := run([]string{tc.cmd, help}, &stdout, &stderr); code != 0 {
				t.Errorf("herald %s %s: exit %d, stderr %q", tc.cmd, help, code, stderr.String())
				continue
			}
			out := stdout.String()
			usage, _, _ := strings.Cut(out, "\n")
			if !strings.HasPrefix(usage, "usage: herald "+tc.cmd) {
				t.Errorf("herald %s %s: first line %q", tc.cmd, help, usage)
			}
			for _, w := range tc.want {
				if !strings.Contains(usage, w) {
					t.Errorf("herald %s %s: usage %q lacks %q", tc.cmd, help, usage, w)
				}
			}
			if !strings.Contains(out, "\nflags:\n") || !strings.Contains(out, "  -") {
				t.Errorf("herald %s %s: no flags listed:\n%s", tc.cmd, help, out)
			}
		}
		var stdout, stderr bytes.Buffer
		if code := run([]string{tc.cmd, "--no-such-flag"}, &stdout, &stderr); code != 2 {
			t.Errorf("herald %s --no-such-flag: exit %d, want 2", tc.cmd, code)
		}
		if !strings.Contains(stderr.String(), "no-such-flag") || !strings.Contains(stderr.String(), "usage: herald "+tc.cmd) {
			t.Errorf("herald %s --no-such-flag: stderr %q", tc.cmd, stderr.String())
		}
	}
}

// TestNotRunning: a client command with no daemon names the socket it
// tried and how to start a daemon or point at one; with --device it tries
// the emulator's socket.
func TestNotRunning(t *testing.T) {
	unsetEnv(t)
	missing := filepath.Join(t.TempDir(), "none.sock")
	paths := platform.DefaultPaths(userMode())
	for _, tc := range []struct {
		args   []string
		socket string
	}{
		{[]string{"open", "demo", "--socket", missing}, missing},
		{[]string{"channels", "--socket", missing, "--device", "phone-0001"}, missing},
		{[]string{"toasts", "--device", "phone-0001"}, emulatorSocket(paths)},
	} {
		if _, live := platform.SocketOwner(tc.socket); live {
			t.Skipf("a daemon is listening on %s", tc.socket)
		}
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, &stdout, &stderr); code != 1 {
			t.Fatalf("herald %v: exit %d, want 1", tc.args, code)
		}
		for _, w := range []string{tc.socket, "herald run", "herald emulate", "--socket PATH", "HERALD_SOCKET"} {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("herald %v: stderr lacks %q:\n%s", tc.args, w, stderr.String())
			}
		}
	}
}
