//go:build linux

package server_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// The tests here run the service in a process of its own, this test
// binary run again with childEnv set, so that its descriptor limit can be
// lowered without lowering the tests'. 127.0.0.0/8 is all loopback on
// Linux, so the attacks can come from addresses of their own.

const (
	childEnv   = "HERALD_SERVER_TEST_CHILD_NOFILE"
	childDBEnv = "HERALD_SERVER_TEST_CHILD_DB"
)

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(runChild(v))
	}
	os.Exit(m.Run())
}

// runChild serves with RLIMIT_NOFILE lowered to nofile, prints "addr
// ADDR", then obeys stdin: "fill" takes every descriptor left ("full"),
// "free" gives them back ("freed"); the end of stdin stops it.
func runChild(nofile string) int {
	n, err := strconv.ParseUint(nofile, 10, 64)
	if err == nil {
		err = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	st, err := sqlitestore.Open(context.Background(), os.Getenv(childDBEnv), sqlitestore.Options{GroupCommit: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	svc, err := server.Start(context.Background(), server.ServeConfig{Listen: "127.0.0.1:0", Store: st,
		Server: server.Config{Logger: log}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	fmt.Printf("addr %s\n", svc.Addr())
	var held []*os.File
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "fill":
			for {
				f, err := os.Open(os.DevNull)
				if err != nil {
					break
				}
				held = append(held, f)
			}
			fmt.Println("full")
		case "free":
			for _, f := range held {
				f.Close()
			}
			held = nil
			fmt.Println("freed")
		}
	}
	svc.Close()
	return 0
}

// child is a service running in a process of its own.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *lockedBuffer
	addr   string
	base   string
	done   chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// childWait is a failsafe against a child that hangs; it is never what a
// test measures.
const childWait = 60 * time.Second

func startChild(t *testing.T, nofile int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(nofile), childDBEnv+"="+filepath.Join(t.TempDir(), "svc.db"))
	c := &child{cmd: cmd, stderr: &lockedBuffer{}, lines: make(chan string, 4), done: make(chan error, 1)}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		select {
		case <-c.done:
		case <-time.After(childWait):
			cmd.Process.Kill()
			<-c.done
		}
	})
	line := c.line(t)
	addr, ok := strings.CutPrefix(line, "addr ")
	if !ok {
		t.Fatalf("child said %q; its log:\n%s", line, c.stderr)
	}
	c.addr, c.base = addr, "http://"+addr
	return c
}

func (c *child) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatalf("child ended; its log:\n%s", c.stderr)
		}
		return l
	case <-time.After(childWait):
		t.Fatalf("child silent; its log:\n%s", c.stderr)
	}
	return ""
}

func (c *child) command(t *testing.T, cmd, want string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
	if got := c.line(t); got != want {
		t.Fatalf("child answered %s with %q, want %q", cmd, got, want)
	}
}

// stop ends the child and returns how many times it warned that it was
// out of descriptors.
func (c *child) stop(t *testing.T) int {
	t.Helper()
	c.stdin.Close()
	select {
	case err := <-c.done:
		if err != nil {
			t.Fatalf("child: %v; its log:\n%s", err, c.stderr)
		}
	case <-time.After(childWait):
		t.Fatal("child did not stop")
	}
	c.done <- nil // for the cleanup
	n := 0
	for _, l := range strings.Split(c.stderr.String(), "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "out of file descriptors") {
			n++
		}
	}
	return n
}

// helloAttack is the attack of the issue at a test's size: from
// 127.0.0.9, n device connections opened all at once that never say
// hello. It returns how many were upgraded, how many refused with 503,
// and how many closed without an answer (accepted on the reserve
// descriptor and closed, while the burst had the service out of
// descriptors for a moment).
func helloAttack(t *testing.T, base string, n int) (upgraded, refused, closed int) {
	t.Helper()
	var mu sync.Mutex
	var conns []*websocket.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := wsDialerFrom("127.0.0.9")
			d.HandshakeTimeout = 5 * time.Second
			ws, resp, err := d.Dial(wsURL(base), nil)
			mu.Lock()
			defer mu.Unlock()
			var ne net.Error
			switch {
			case err == nil:
				upgraded++
				conns = append(conns, ws)
			case resp != nil && resp.StatusCode == http.StatusServiceUnavailable:
				refused++
			case errors.As(err, &ne) && ne.Timeout():
				// Left waiting: what the attack did before the bound.
			default:
				closed++
			}
		}()
	}
	wg.Wait()
	return upgraded, refused, closed
}

// TestHelloFloodUnderDescriptorLimit is the attack against a
// service in a process of its own with 512 descriptors: 700 connections
// from 127.0.0.9, opened at once, that never say hello. Before the bound
// they took every descriptor, and a sender on 127.0.0.2 and a device on
// 127.0.0.3 timed out; now 127.0.0.9 holds its 64 and is refused (or, in
// the moment of the burst, closed) the rest, and both are served.
func TestHelloFloodUnderDescriptorLimit(t *testing.T) {
	const nofile, attackers = 512, 700
	c := startChild(t, nofile)
	base := c.base

	victim, err := dialFrom(t, base, "127.0.0.3", "", "")
	if err != nil {
		t.Fatal(err)
	}
	ch := victim.open("victim", "")
	victim.bind(ch.ChannelID, true, false)
	victim.ws.Close()

	start := time.Now()
	upgraded, refused, closed := helloAttack(t, base, attackers)
	took := time.Since(start)

	sender := fromAddr("127.0.0.2")
	sender.Timeout = 10 * time.Second
	d, err := dialFrom(t, base, "127.0.0.3", victim.id, victim.secret)
	if err != nil {
		t.Fatalf("the device from 127.0.0.3 during the attack: %v", err)
	}
	mustPost(t, sender, ch.URI)
	if n := d.nextNotification(); n.ChannelID != ch.ChannelID {
		t.Fatalf("the device got %+v", n)
	}
	m := testenv.Scrape(t, base+server.MetricsPath)
	t.Logf("from 127.0.0.9 in %v: %d connections upgraded and held without a hello, %d refused 503, %d closed unanswered (accepts failed for want of descriptors: %v)",
		took.Round(time.Millisecond), upgraded, refused, closed, m.Value("herald_service_accept_errors_total", "reason", "descriptors"))
	if upgraded+refused+closed != attackers || refused == 0 {
		t.Fatalf("127.0.0.9: %d upgraded, %d refused, %d closed of %d; want every one answered, and refusals", upgraded, refused, closed, attackers)
	}
	// Held connections are let go at the hello timeout (10 s), and their
	// places taken by others; a burst that ended sooner had only 64.
	if took < 9*time.Second && upgraded > server.DefaultMaxPendingHellosPerSource {
		t.Fatalf("127.0.0.9 held %d connections without a hello, more than %d", upgraded, server.DefaultMaxPendingHellosPerSource)
	}
	if got := m.Value("herald_service_device_hellos_refused_total", "bound", "source"); got != float64(refused) {
		t.Errorf("refusals counted %v, answered %d", got, refused)
	}
}

// TestAcceptOutOfDescriptors: with every descriptor of the service's
// process taken, a connection is not left waiting in the listen queue:
// it is accepted on the reserve descriptor and closed at once, the
// failure is counted, and it is warned of once, not once per failure.
func TestAcceptOutOfDescriptors(t *testing.T) {
	c := startChild(t, 128)
	c.command(t, "fill", "full")
	const conns = 5
	for i := range conns {
		nc, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 10 * time.Second}).Dial("tcp", c.addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = nc.Read(make([]byte, 1))
		nc.Close()
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("connection %d with no descriptor left: read %v; want it closed at once", i, err)
		}
	}
	c.command(t, "free", "freed")
	m := testenv.Scrape(t, c.base+server.MetricsPath)
	failures := m.Value("herald_service_accept_errors_total", "reason", "descriptors")
	if failures < conns {
		t.Fatalf("%v accept failures counted, want at least %d", failures, conns)
	}
	// Served again once descriptors are back.
	if _, err := dialFrom(t, c.base, "127.0.0.3", "", ""); err != nil {
		t.Fatalf("a device after descriptors came back: %v", err)
	}
	warnings := c.stop(t)
	if warnings < 1 || float64(warnings) >= failures {
		t.Fatalf("%d warnings for %v failures; want at least one, and fewer than the failures", warnings, failures)
	}
}
