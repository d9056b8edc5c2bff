//go:build linux

package platform

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envSystemService opts in to tests that install, start, stop and uninstall
// a real OS service. Plain `go test` never touches the machine.
const envSystemService = "HERALD_TEST_SYSTEM_SERVICE"

// TestServiceSystemLifecycle installs testdata/svcprog as a real service,
// starts, restarts and stops it through the service manager, checks that
// the daemon received its arguments and was stopped through ctx, and
// uninstalls it without leaving anything behind.
func TestServiceSystemLifecycle(t *testing.T) {
	if os.Getenv(envSystemService) != "1" {
		t.Skipf("installs a real OS service; set %s=1 (as root) to run", envSystemService)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("%s=1 needs root to install a system service", envSystemService)
	}

	dir := t.TempDir()
	bin := buildSvcprog(t, dir)
	name := "herald-test-" + randomHex(t, 4)
	sock := filepath.Join(dir, "svc.sock")
	marker := filepath.Join(dir, "marker")
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o755); err != nil {
		t.Fatal(err)
	}

	svc, err := NewService(ServiceOptions{
		Name:         name,
		DisplayName:  "Herald test service",
		Description:  "Herald platform test daemon",
		Executable:   bin,
		Arguments:    []string{"--name", name, "--socket", sock, "--marker", marker},
		LogDirectory: logs,
	}, nil)
	if err != nil {
		t.Fatalf("NewService: %v", err)
	}
	t.Logf("service %s on %s", name, svc.Platform())
	t.Cleanup(func() { cleanupService(t, svc, name, marker, logs) })

	if st, err := svc.Status(); err != nil || st != StatusNotInstalled {
		t.Fatalf("Status before install = %v, %v; want %v", st, err, StatusNotInstalled)
	}
	if err := svc.Control("install"); err != nil {
		t.Fatalf("install: %v", err)
	}
	if err := svc.Control("install"); !errors.Is(err, ErrAlreadyInstalled) {
		t.Errorf("second install = %v, want %v", err, ErrAlreadyInstalled)
	}
	if svc.Platform() == platformSysV {
		script, err := os.ReadFile(filepath.Join(sysvEtc, "init.d", name))
		if err != nil {
			t.Fatalf("init script: %v", err)
		}
		if !strings.Contains(string(script), "--socket") {
			t.Errorf("init script does not pass the arguments:\n%s", script)
		}
		if links := sysvLinks(t, name); len(links) == 0 {
			t.Errorf("install made no /etc/rc?.d links")
		}
	}
	if st, err := svc.Status(); err != nil || st != StatusStopped {
		t.Fatalf("Status after install = %v, %v; want %v", st, err, StatusStopped)
	}

	if err := svc.Control("start"); err != nil {
		t.Fatalf("start: %v", err)
	}
	waitStatus(t, svc, StatusRunning)
	ping(t, sock)
	pid1 := startedPID(t, marker, 1)

	if err := svc.Control("restart"); err != nil {
		t.Fatalf("restart: %v", err)
	}
	waitStatus(t, svc, StatusRunning)
	ping(t, sock)
	pid2 := startedPID(t, marker, 2)
	if pid1 == pid2 {
		t.Errorf("restart kept pid %d", pid1)
	}
	if !processGone(pid1) {
		t.Errorf("process %d still alive after restart", pid1)
	}

	if err := svc.Control("stop"); err != nil {
		t.Fatalf("stop: %v", err)
	}
	waitStatus(t, svc, StatusStopped)
	if got := readMarker(t, marker); strings.Count(got, "stopped\n") != 2 {
		t.Errorf("daemon was not stopped through ctx twice; marker:\n%s", got)
	}
	if !processGone(pid2) {
		t.Errorf("process %d still alive after stop", pid2)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after stop: %v", err)
	}

	if err := svc.Control("uninstall"); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if st, err := svc.Status(); err != nil || st != StatusNotInstalled {
		t.Errorf("Status after uninstall = %v, %v; want %v", st, err, StatusNotInstalled)
	}
	for _, left := range leftovers(t, name) {
		t.Errorf("left after uninstall: %s", left)
	}
}

func buildSvcprog(t *testing.T, dir string) string {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the test daemon: %v", err)
	}
	bin := filepath.Join(dir, "svcprog")
	cmd := exec.Command(gobin, "build", "-o", bin, "./testdata/svcprog")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build svcprog: %v\n%s", err, out)
	}
	return bin
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func waitStatus(t *testing.T, svc *Service, want ServiceStatus) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := svc.Status()
		if err == nil && st == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status is %v (%v), want %v", st, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ping asks the daemon over its socket, retrying while it comes up.
func ping(t *testing.T, sock string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if last = pingOnce(sock); last == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("daemon does not answer on %s: %v", sock, last)
}

func pingOnce(sock string) error {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintln(c, "ping"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "pong\n" {
		return fmt.Errorf("answer %q, want pong", line)
	}
	return nil
}

func readMarker(t *testing.T, marker string) string {
	t.Helper()
	b, err := os.ReadFile(marker)
	if err != nil {
		t.Fatalf("marker: %v", err)
	}
	return string(b)
}

// startedPID returns the pid of the nth start recorded in the marker.
func startedPID(t *testing.T, marker string, nth int) int {
	t.Helper()
	var pids []int
	for _, l := range strings.Split(readMarker(t, marker), "\n") {
		if p, ok := strings.CutPrefix(l, "started "); ok {
			pid, err := strconv.Atoi(p)
			if err != nil {
				t.Fatalf("marker line %q: %v", l, err)
			}
			pids = append(pids, pid)
		}
	}
	if len(pids) != nth {
		t.Fatalf("marker records %d starts, want %d", len(pids), nth)
	}
	return pids[nth-1]
}

// processGone reports whether pid has exited (a zombie counts as exited).
func processGone(pid int) bool {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true
		}
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i+1:]), " Z") {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func sysvLinks(t *testing.T, name string) []string {
	t.Helper()
	links, err := filepath.Glob(filepath.Join(sysvEtc, "rc?.d", "[SK][0-9][0-9]"+name))
	if err != nil {
		t.Fatal(err)
	}
	return links
}

// leftovers lists what an installed service could leave on the machine.
func leftovers(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, p := range []string{
		filepath.Join(sysvEtc, "init.d", name),
		"/var/run/" + name + ".pid",
		"/etc/systemd/system/" + name + ".service",
	} {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return append(out, sysvLinks(t, name)...)
}

// cleanupService undoes whatever a failed test left: it stops and
// uninstalls the service, kills the daemon if the manager lost track of
// it, and removes the files the service manager wrote.
func cleanupService(t *testing.T, svc *Service, name, marker, logs string) {
	t.Helper()
	if st, err := svc.Status(); err == nil && st != StatusNotInstalled {
		if st == StatusRunning {
			if err := svc.Control("stop"); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
		if err := svc.Control("uninstall"); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
	if b, err := os.ReadFile(marker); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if p, ok := strings.CutPrefix(l, "started "); ok {
				if pid, err := strconv.Atoi(p); err == nil && !processGone0(pid) {
					t.Logf("cleanup: killing leftover daemon %d", pid)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	for _, p := range leftovers(t, name) {
		if err := os.Remove(p); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
	if t.Failed() {
		for _, f := range []string{name + ".log", name + ".err"} {
			if b, err := os.ReadFile(filepath.Join(logs, f)); err == nil && len(b) > 0 {
				t.Logf("%s:\n%s", f, b)
			}
		}
	}
}

// processGone0 is processGone without waiting.
func processGone0(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err != nil
}
