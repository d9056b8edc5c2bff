// Package dbustest runs a private D-Bus bus for tests.
package dbustest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// SessionBus runs a private dbus-daemon for the test and returns its
// address; it is stopped when the test ends. Its configuration has no
// service directories, so nothing is activated behind the test's back. The
// test is skipped when dbus-daemon is not installed (Debian package dbus).
func SessionBus(t testing.TB) string {
	t.Helper()
	return start(t, false, "")
}

// ActivatingBus is SessionBus with one service directory, dir: the bus
// starts the programs its .service files name when their names are asked
// for (D-Bus activation).
func ActivatingBus(t testing.TB, dir string) string {
	t.Helper()
	return start(t, false, dir)
}

// SharedBus is SessionBus that every Unix user may connect to (its socket's
// directory is world-readable and its policy allows any user), and on which
// any connection may own any name: a bus shared by several users, as a
// system bus with a lax policy is.
func SharedBus(t testing.TB) string {
	t.Helper()
	return start(t, true, "")
}

func start(t testing.TB, shared bool, serviceDir string) string {
	t.Helper()
	exe, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("dbus-daemon not found (Debian package dbus)")
	}
	dir, err := os.MkdirTemp("", "hb") // a short path: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	users := ""
	if shared {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		users = "\n    <allow user=\"*\"/>"
	}
	services := ""
	if serviceDir != "" {
		services = "\n  <servicedir>" + serviceDir + "</servicedir>"
	}
	conf := filepath.Join(dir, "session.conf")
	err = os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=`+filepath.Join(dir, "bus")+`</listen>
  <auth>EXTERNAL</auth>`+services+`
  <policy context="default">`+users+`
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "--config-file="+conf, "--nofork", "--print-address=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			t.Fatalf("dbus-daemon printed no address; stderr:\n%s", stderr.String())
		}
		return a
	case <-time.After(10 * time.Second):
		t.Fatalf("dbus-daemon did not start; stderr:\n%s", stderr.String())
	}
	return ""
}
