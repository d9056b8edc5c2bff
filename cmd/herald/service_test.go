package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/server"
)

// TestInstallPrint renders the systemd units `herald install` writes and
// checks their settings.
func TestInstallPrint(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "herald")
	tests := []struct {
		name    string
		args    []string
		want    []string
		notWant []string
	}{
		{
			name: "system",
			args: []string{"--user=false", "--data", "/srv/herald", "--socket-group", "herald"},
			want: []string{
				"ExecStart=" + exe + " run --name=herald --config=/etc/herald/herald.toml --data=/srv/herald --socket=/run/herald/herald.sock --socket-group=herald\n",
				"After=network-online.target\n", "Wants=network-online.target\n",
				"Restart=on-failure\n", "RestartSec=5\n", "LimitNOFILE=65536\n",
				"StateDirectory=herald\n", "RuntimeDirectory=herald\n",
				"WantedBy=multi-user.target\n",
			},
			notWant: []string{"User=", "default.target"},
		},
		{
			name:    "system as a dedicated user",
			args:    []string{"--user=false", "--run-as", "herald", "--name", "herald-2"},
			want:    []string{"User=herald\n", "ExecStart=" + exe + " run --name=herald-2 ", "WantedBy=multi-user.target\n"},
			notWant: []string{"default.target"},
		},
		{
			name:    "user",
			args:    []string{"--user", "--data", "/home/u/h", "--socket", "/run/user/1000/herald/herald.sock"},
			want:    []string{"Restart=on-failure\n", "RestartSec=5\n", "LimitNOFILE=65536\n", "WantedBy=default.target\n", "--data=/home/u/h --socket=/run/user/1000/herald/herald.sock\n"},
			notWant: []string{"User=", "multi-user.target", "StateDirectory", "network-online"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"install", "--print", "--executable", exe}, tt.args...)
			if code := run(args, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			if errb.Len() != 0 {
				t.Errorf("--executable is used where it is, yet: %s", errb.String())
			}
			out.Reset()
			if code := run(args, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			unit := out.String()
			for _, w := range tt.want {
				if !strings.Contains(unit, w) {
					t.Errorf("unit lacks %q:\n%s", w, unit)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(unit, w) {
					t.Errorf("unit has %q:\n%s", w, unit)
				}
			}
		})
	}
}

// TestInstallPrintOwnCopy: without --executable the service runs a copy
// of this binary at a path of its own, not the build it was installed
// from, and --print says so.
func TestInstallPrintOwnCopy(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := filepath.EvalSymlinks(self); err == nil {
		self = s
	}
	for _, tt := range []struct {
		user bool
		want string
	}{
		{false, "/usr/local/lib/herald-x/herald"},
		{true, filepath.Join(home, ".local", "lib", "herald-x", "herald")},
	} {
		var out, errb bytes.Buffer
		if code := run([]string{"install", "--print", "--name", "herald-x", fmt.Sprintf("--user=%v", tt.user)}, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		if !strings.Contains(out.String(), "ExecStart="+tt.want+" run --name=herald-x ") {
			t.Errorf("user=%v: unit does not run %s:\n%s", tt.user, tt.want, out.String())
		}
		if want := "herald: install copies " + self + " to " + tt.want + ", which the service runs\n"; errb.String() != want {
			t.Errorf("user=%v: stderr %q, want %q", tt.user, errb.String(), want)
		}
		if _, err := os.Stat(tt.want); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("--print made %s: %v", tt.want, err)
		}
	}
}

// TestServiceCommandErrors checks that bad service commands fail with a
// message rather than touching anything.
func TestServiceCommandErrors(t *testing.T) {
	// Uninstalling a service never installed: root's default is the
	// system service, which is not there. A normal user's default is a
	// per-user service, which System V init cannot have at all; elsewhere
	// it is not there either.
	never := "herald-test-never-installed-" + randomHex(t)
	notThere := "not installed"
	if svc, err := platform.NewService(serviceOptions(never, userMode()), nil); err != nil {
		t.Fatal(err)
	} else if userMode() && svc.Platform() == "unix-systemv" {
		notThere = "per-user services need systemd or launchd"
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"install", "--print", "--name", "bad name"}, 1, "invalid service name"},
		{[]string{"install", "--print", "--user", "--run-as", "nobody"}, 1, "cannot run as another user"},
		{[]string{"start", "extra"}, 2, "usage: herald start"},
		{[]string{"uninstall", "--name", never}, 1, notThere},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, errb.String())
			}
			if !strings.Contains(errb.String(), tt.want) {
				t.Errorf("stderr %q lacks %q", errb.String(), tt.want)
			}
		})
	}
}

// TestStatusNothingRunning: no service, no daemon.
func TestStatusNothingRunning(t *testing.T) {
	setSystemSocket(t, filepath.Join(t.TempDir(), "none.sock"))
	var out, errb bytes.Buffer
	name := "herald-test-" + randomHex(t)
	sock := testenv.SocketPath(t)
	if code := run([]string{"status", "--name", name, "--socket", sock}, &out, &errb); code != 3 {
		t.Fatalf("exit %d, want 3; stderr: %s", code, errb.String())
	}
	if !strings.HasPrefix(out.String(), "daemon:      not running (no answer on "+sock+")\n") {
		t.Errorf("output does not start with the daemon:\n%s", out.String())
	}
	for _, w := range []string{"os service:  " + name + ": not installed", "herald run", "HERALD_SOCKET"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
}

// TestStatusForegroundDaemon: a daemon run in a terminal leads the status,
// the missing OS service is explained rather than reported first, and a
// link held down from the start screen reads as offline with no next
// attempt.
func TestStatusForegroundDaemon(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	name := "herald-test-" + randomHex(t)
	status := func() string {
		var out, errb bytes.Buffer
		if code := run([]string{"status", "--name", name, "--socket", d.Socket}, &out, &errb); code != 0 {
			t.Fatalf("exit %d; stderr: %s", code, errb.String())
		}
		return out.String()
	}
	out := status()
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "daemon:      running") ||
		lines[1] != "os service:  "+name+": not installed; the daemon runs outside the service manager (herald run or herald emulate)" ||
		!strings.HasPrefix(lines[3], "link:        connected since") {
		t.Fatalf("status:\n%s", out)
	}
	d.Link().SetOffline(true)
	out = status()
	if !strings.Contains(out, "link:        offline (held by the emulator/UI") || strings.Contains(out, "next attempt") {
		t.Fatalf("status held offline:\n%s", out)
	}
}

// setSystemSocket points status at a system daemon's socket of the
// test's own, not the machine's.
func setSystemSocket(t *testing.T, path string) {
	t.Helper()
	old := systemSocket
	systemSocket = func() string { return path }
	t.Cleanup(func() { systemSocket = old })
}

// TestStatusNamesSystemDaemon: a user whose own socket has no daemon is
// told where the system daemon's socket is and how to reach it, or why
// they cannot: root may use any socket, anyone else only one that lets
// them in (socket_group).
func TestStatusNamesSystemDaemon(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	setSystemSocket(t, d.Socket)
	mine := testenv.SocketPath(t) // nothing listens here
	name := "herald-test-" + randomHex(t)
	status := func(args ...string) (string, int) {
		t.Helper()
		var out, errb bytes.Buffer
		code := run(append([]string{"status", "--name", name, "--socket", mine}, args...), &out, &errb)
		if errb.Len() > 0 {
			t.Errorf("stderr: %s", errb.String())
		}
		return out.String(), code
	}

	out, code := status()
	if code != 3 || !strings.HasPrefix(out, "daemon:      not running (no answer on "+mine+")\n") ||
		!strings.Contains(out, "system daemon: answers on "+d.Socket+"; talk to it with --socket "+d.Socket+" or HERALD_SOCKET="+d.Socket+"\n") {
		t.Fatalf("exit %d, status:\n%s", code, out)
	}
	out, _ = status("--json")
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Daemon || rep.SystemDaemon == nil ||
		*rep.SystemDaemon != (systemDaemon{Socket: d.Socket, State: systemAnswers}) {
		t.Fatalf("status --json: %v\n%s", err, out)
	}

	// A socket the user may not open: mode 0 keeps out everyone but root.
	if err := os.Chmod(d.Socket, 0); err != nil {
		t.Fatal(err)
	}
	out, code = status()
	if os.Geteuid() == 0 {
		if code != 3 || !strings.Contains(out, "system daemon: answers on "+d.Socket) {
			t.Fatalf("root, socket mode 0: exit %d, status:\n%s", code, out)
		}
	} else {
		for _, w := range []string{"system daemon: its socket " + d.Socket + " is there, but you may not use it", "--socket-group GROUP", "usermod -aG GROUP", "herald run"} {
			if !strings.Contains(out, w) {
				t.Errorf("uid %d, socket mode 0: status lacks %q:\n%s", os.Geteuid(), w, out)
			}
		}
	}

	// A socket left behind by a daemon that is gone.
	stale := filepath.Join(t.TempDir(), "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	setSystemSocket(t, stale)
	if out, code = status(); code != 3 || !strings.Contains(out, "system daemon: its socket "+stale+" is there but nothing answers") || !strings.Contains(out, "herald run") {
		t.Fatalf("stale socket: exit %d, status:\n%s", code, out)
	}

	// The system socket itself, asked for and silent, is not suggested.
	setSystemSocket(t, mine)
	if out, _ = status(); strings.Contains(out, "system daemon") {
		t.Fatalf("the socket tried suggested as the system one:\n%s", out)
	}
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// envSystemService opts in to installing a real OS service; .ci/run sets
// it (CI runs as root without systemd, so System V).
const envSystemService = "HERALD_TEST_SYSTEM_SERVICE"

// TestServiceSystemCycle builds the real herald binary and takes it
// through the whole service cycle with the OS service manager: install,
// start, status running with the local API answering, restart, stop,
// uninstall, and nothing left behind.
func TestServiceSystemCycle(t *testing.T) {
	if os.Getenv(envSystemService) != "1" {
		t.Skipf("installs a real OS service; set %s=1 (as root) to run", envSystemService)
	}
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Fatalf("%s=1 needs root on Linux", envSystemService)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "herald")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	name := "herald-test-" + randomHex(t)
	data := filepath.Join(dir, "data")
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := testenv.SocketPath(t)
	herald := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("herald %v: %v", args, err)
		}
		return string(out), code
	}
	status := func() (statusReport, int) {
		t.Helper()
		out, code := herald("status", "--user=false", "--name", name, "--socket", sock, "--json")
		var rep statusReport
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		return rep, code
	}
	t.Cleanup(func() {
		if st, _ := status(); st.ServiceState.State != "not installed" {
			herald("stop", "--user=false", "--name", name)
			herald("uninstall", "--user=false", "--name", name)
		}
		for _, p := range leftovers(t, name) {
			os.RemoveAll(p)
		}
		if t.Failed() {
			for _, f := range []string{name + ".log", name + ".err"} {
				if b, err := os.ReadFile(filepath.Join(logs, f)); err == nil {
					t.Logf("%s:\n%s", f, b)
				}
			}
		}
	})

	out, code := herald("install", "--user=false", "--name", name, "--data", data, "--socket", sock,
		"--listen", "127.0.0.1:0", "--log-dir", logs, "--log-level", "debug")
	if code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	// The service runs its own copy: the build it was installed from can
	// go (a rebuild, a git clean) and the service still starts.
	copied := "/usr/local/lib/" + name + "/herald"
	if !strings.Contains(out, "running "+copied) {
		t.Fatalf("install does not say it runs %s:\n%s", copied, out)
	}
	moved := bin + ".moved"
	if err := os.Rename(bin, moved); err != nil {
		t.Fatal(err)
	}
	bin = moved
	if st, code := status(); code != 3 || st.ServiceState.State != "stopped" || st.Daemon {
		t.Fatalf("after install: exit %d, %+v", code, st)
	}
	if out, code := herald("start", "--user=false", "--name", name); code != 0 {
		t.Fatalf("start: exit %d\n%s", code, out)
	}
	client := app.NewClient(sock)
	testenv.Eventually(t, 30*time.Second, "daemon answering with its link up", func() bool {
		st, err := client.Status(context.Background())
		return err == nil && st.Connected
	})
	if st, code := status(); code != 0 || st.ServiceState.State != "running" || !st.Daemon {
		t.Fatalf("after start: exit %d, %+v", code, st)
	}
	if out, _ := herald("status", "--user=false", "--name", name, "--socket", sock); !strings.Contains(out, "link:        connected since") {
		t.Errorf("status does not show the link:\n%s", out)
	}
	before, err := client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if out, code := herald("restart", "--user=false", "--name", name); code != 0 {
		t.Fatalf("restart: exit %d\n%s", code, out)
	}
	// A new process connects anew.
	testenv.Eventually(t, 30*time.Second, "daemon answering after restart", func() bool {
		st, err := client.Status(context.Background())
		return err == nil && st.Connected && st.Since != nil && before.Since != nil && st.Since.After(*before.Since)
	})
	if fi, err := os.Stat(data); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v, %v; want created with mode 0700", fi, err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket: %v, %v; want mode 0600", fi, err)
	}

	if out, code := herald("stop", "--user=false", "--name", name); code != 0 {
		t.Fatalf("stop: exit %d\n%s", code, out)
	}
	testenv.Eventually(t, 30*time.Second, "service stopped", func() bool {
		st, code := status()
		return code == 3 && st.ServiceState.State == "stopped"
	})
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after stop: %v", err)
	}
	if out, code := herald("uninstall", "--user=false", "--name", name); code != 0 {
		t.Fatalf("uninstall: exit %d\n%s", code, out)
	}
	if st, _ := status(); st.ServiceState.State != "not installed" {
		t.Errorf("after uninstall: %+v", st)
	}
	for _, p := range leftovers(t, name) {
		t.Errorf("left after uninstall: %s", p)
	}
}

// leftovers lists the files an installed service could leave behind.
func leftovers(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, p := range []string{"/etc/init.d/" + name, "/var/run/" + name + ".pid", "/etc/systemd/system/" + name + ".service", "/usr/local/lib/" + name} {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	links, err := filepath.Glob("/etc/rc?.d/[SK][0-9][0-9]" + name)
	if err != nil {
		t.Fatal(err)
	}
	return append(out, links...)
}
