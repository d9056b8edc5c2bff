package daemon_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/dbustest"
)

const intruderBusEnv = "HERALD_UP_INTRUDER_BUS"

// intruderLine is one line the intruder child prints: first its attempts,
// then each call the distributor made to it.
type intruderLine struct {
	UnregisterErr  string `json:"unregister_err,omitempty"`
	RegisterResult string `json:"register_result,omitempty"`
	RegisterReason string `json:"register_reason,omitempty"`
	Call           string `json:"call,omitempty"`
}

// TestUnifiedPushIntruderChild is the other user's process of
// TestUnifiedPushWrongUserProcess: it takes the shared name, serves a
// Connector2 that reports each call on stdout, tries Unregister and
// Register, and leaves the bus when its stdin closes.
func TestUnifiedPushIntruderChild(t *testing.T) {
	bus := os.Getenv(intruderBusEnv)
	if bus == "" {
		t.Skip("run by TestUnifiedPushWrongUserProcess as another user")
	}
	conn, err := dbus.Connect(bus)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	emit := func(l intruderLine) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(l)
	}
	c := &connector{t: t, conn: conn, name: sharedName, calls: make(chan upCall, 32), failNext: make(chan struct{}, 1)}
	if err := conn.Export(connector2Object{c}, "/org/unifiedpush/Connector", "org.unifiedpush.Connector2"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(sharedName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s: %v %v", sharedName, reply, err)
	}
	go func() {
		for call := range c.calls {
			emit(intruderLine{Call: call.method})
		}
	}()
	res, reason := c.register2(sharedName, "token-a", "")
	emit(intruderLine{UnregisterErr: unregisterErr(c.distributor(), "token-a"), RegisterResult: res, RegisterReason: reason})
	io.Copy(io.Discard, os.Stdin)
}

// TestUnifiedPushWrongUserProcess is TestUnifiedPushWrongUser with a real
// process of user 65534 on a bus every user may join, nothing injected.
func TestUnifiedPushWrongUserProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a process as another user (TestUnifiedPushWrongUser covers the check as any user)")
	}
	bus := dbustest.SharedBus(t)
	testUnifiedPushWrongUser(t, bus, daemon.Config{}, func(t *testing.T) intruder {
		bin := copyTestBinary(t)
		cmd := exec.Command(bin, "-test.run=^TestUnifiedPushIntruderChild$", "-test.count=1")
		cmd.Dir = filepath.Dir(bin)
		cmd.Env = []string{intruderBusEnv + "=" + bus, "HOME=" + cmd.Dir, "GOCOVERDIR=" + cmd.Dir}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: otherUID}}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &processIntruder{t: t, cmd: cmd, stdin: stdin, stderr: &stderr, first: make(chan intruderLine, 1), read: make(chan struct{})}
		go func() {
			defer close(p.read)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				var l intruderLine
				if !strings.HasPrefix(sc.Text(), "{") || json.Unmarshal(sc.Bytes(), &l) != nil {
					continue
				}
				if l.Call == "" {
					p.first <- l
					continue
				}
				p.mu.Lock()
				p.calls = append(p.calls, l.Call)
				p.mu.Unlock()
			}
		}()
		t.Cleanup(p.stop)
		select {
		case p.attempted = <-p.first:
			return p
		case <-p.read:
			p.stop()
			t.Fatalf("the intruder process said nothing:\n%s", stderr.String())
			return nil
		}
	})
}

type processIntruder struct {
	t         *testing.T
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	stderr    *bytes.Buffer
	first     chan intruderLine
	attempted intruderLine
	read      chan struct{} // closed when stdout is read to its end
	mu        sync.Mutex
	calls     []string
	done      bool
}

func (p *processIntruder) attempts() (string, string, string) {
	return p.attempted.UnregisterErr, p.attempted.RegisterResult, p.attempted.RegisterReason
}

// leave closes the child's stdin, so it leaves the bus and exits, and
// returns every call it reported.
func (p *processIntruder) leave() []string {
	p.stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// stop ends the child: its stdout is read to the end before Wait, which
// closes the pipe.
func (p *processIntruder) stop() {
	if p.done {
		return
	}
	p.done = true
	p.stdin.Close()
	<-p.read
	if err := p.cmd.Wait(); err != nil {
		p.t.Errorf("the intruder process: %v\n%s", err, p.stderr.String())
	}
}

// copyTestBinary copies the test binary where another user can run it.
func copyTestBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "hc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "daemon.test")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}
