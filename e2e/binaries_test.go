package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/internal/testenv"
)

// buildBinaries builds herald and heraldsvc into dir.
func buildBinaries(t *testing.T, dir string) (herald, heraldsvc string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the binaries: %v", err)
	}
	// Without symbol tables and DWARF the link, most of this build's time
	// (the packages come from the build cache), is a third shorter.
	cmd := exec.Command(goBin, "build", "-ldflags=-s -w", "-o", dir+string(filepath.Separator), "./cmd/herald", "./cmd/heraldsvc")
	cmd.Dir = ".." // the module root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "herald"), filepath.Join(dir, "heraldsvc")
}

// output collects a process's output and splits it into lines.
type output struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	all   bytes.Buffer
	lines []string
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.all.Write(p)
	o.buf.Write(p)
	for {
		i := bytes.IndexByte(o.buf.Bytes(), '\n')
		if i < 0 {
			return len(p), nil
		}
		o.lines = append(o.lines, string(o.buf.Next(i + 1)[:i]))
	}
}

func (o *output) line(i int) (string, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if i < len(o.lines) {
		return o.lines[i], true
	}
	return "", false
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.all.String()
}

// proc is a running child process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout *output
	stderr *output
	next   int // the next stdout line to read
	done   chan struct{}
	err    error
}

// childEnv is the environment without HERALD_* variables, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HERALD_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func startProc(t *testing.T, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(bin) + " " + strings.Join(args, " "), stdout: &output{}, stderr: &output{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s\nstdout:\n%s\nstderr:\n%s", p.name, p.stdout, p.stderr)
		}
	})
	return p
}

// readLine returns the process's next line of output.
func (p *proc) readLine(t *testing.T) string {
	t.Helper()
	var l string
	testenv.Eventually(t, 15*time.Second, "a line from "+p.name, func() bool {
		var ok bool
		l, ok = p.stdout.line(p.next)
		return ok
	})
	p.next++
	return l
}

// stop sends SIGTERM and checks the process exits 0.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signalling %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not exit within 15 s of SIGTERM", p.name)
	}
	if p.err != nil {
		t.Fatalf("%s exited with %v after SIGTERM, want status 0\nstderr:\n%s", p.name, p.err, p.stderr)
	}
}

// cli runs a command to completion and returns its stdout and exit code.
func cli(t *testing.T, env []string, bin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), 0
	case errors.As(err, &ee) && ctx.Err() == nil:
		t.Logf("%s %s: exit %d: %s", filepath.Base(bin), strings.Join(args, " "), ee.ExitCode(), stderr.String())
		return stdout.String(), ee.ExitCode()
	default:
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
		return "", -1
	}
}

// cliJSON runs a command that must succeed and decodes its JSON output.
func cliJSON(t *testing.T, out any, env []string, bin string, args ...string) {
	t.Helper()
	stdout, code := cli(t, env, bin, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d, stdout %q", filepath.Base(bin), strings.Join(args, " "), code, stdout)
	}
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		t.Fatalf("%s %s printed %q: %v", filepath.Base(bin), strings.Join(args, " "), stdout, err)
	}
}

// sendOutcome is what `heraldsvc send` prints.
type sendOutcome struct {
	Status       int    `json:"status"`
	Notification string `json:"notification"`
	Subscription string `json:"subscription"`
	Device       string `json:"device"`
	MessageID    string `json:"message_id"`
}

func mustSend(t *testing.T, env []string, heraldsvc string, args ...string) sendOutcome {
	t.Helper()
	var o sendOutcome
	cliJSON(t, &o, env, heraldsvc, append([]string{"send"}, args...)...)
	if o.Status != http.StatusOK || o.Notification != "Received" || o.Subscription != "Active" || o.Device != "Connected" || o.MessageID == "" {
		t.Fatalf("heraldsvc send %v: %+v, want 200 Received/Active/Connected with a message id", args, o)
	}
	return o
}

// daemonConfig writes a config file so the children ignore the machine's
// own configuration and use the log display and normal power.
func daemonConfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "herald.toml")
	if err := os.WriteFile(path, []byte("display = \"log\"\npower = \"normal\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func waitLinkUp(t *testing.T, socket string) {
	t.Helper()
	c := app.NewClient(socket)
	testenv.Eventually(t, 15*time.Second, "daemon link up", func() bool {
		st, err := c.Status(context.Background())
		return err == nil && st.Connected
	})
}

type openOutput struct {
	App     string `json:"app"`
	Channel string `json:"channel"`
	URI     string `json:"uri"`
}

type tileOutput struct {
	App      string            `json:"app"`
	TileID   string            `json:"tile_id"`
	Template string            `json:"template"`
	Fields   map[string]string `json:"fields"`
}

type toastOutput struct {
	App        string `json:"app"`
	Text1      string `json:"text1"`
	Text2      string `json:"text2"`
	Param      string `json:"param"`
	ReceivedAt string `json:"received_at"`
}

// listenLine is one line `herald listen` prints.
type listenLine struct {
	Type      string `json:"type"`
	App       string `json:"app"`
	MessageID string `json:"message_id"`
	Body      []byte `json:"body"`
	Text1     string `json:"text1"`
	Text2     string `json:"text2"`
	Param     string `json:"param"`
	Connected *bool  `json:"connected"`
}

func (p *proc) readEvent(t *testing.T) listenLine {
	t.Helper()
	l := p.readLine(t)
	var e listenLine
	if err := json.Unmarshal([]byte(l), &e); err != nil {
		t.Fatalf("herald listen printed %q: %v", l, err)
	}
	return e
}

var (
	svcListening = regexp.MustCompile(`^heraldsvc listening on (127\.0\.0\.1:\d+) \(channel URIs under (\S+)\)$`)
	embeddedURL  = regexp.MustCompile(`^herald: notification service (http://127\.0\.0\.1:\d+)$`)
)

// TestBinaries drives the built herald and heraldsvc as separate processes,
// through their command lines only.
func TestBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	herald, heraldsvc := buildBinaries(t, t.TempDir())

	t.Run("separate service", func(t *testing.T) {
		dir := t.TempDir()
		socket := testenv.SocketPath(t)
		env := childEnv("HERALD_SOCKET=" + socket)

		svc := startProc(t, env, heraldsvc, "serve", "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "heraldsvc.db"))
		first := svc.readLine(t)
		m := svcListening.FindStringSubmatch(first)
		if m == nil {
			t.Fatalf("heraldsvc serve printed %q first", first)
		}
		url := "http://" + m[1]
		if m[2] != url {
			t.Fatalf("channel URIs under %s, want %s", m[2], url)
		}

		d := startProc(t, env, herald, "run", "--service", url, "--data", filepath.Join(dir, "data"), "--socket", socket,
			"--config", daemonConfig(t))
		waitLinkUp(t, socket)

		var ch openOutput
		cliJSON(t, &ch, env, herald, "open", "demo", "--toast", "--tile", "--json")
		if ch.App != "demo" || ch.Channel != "default" || !strings.HasPrefix(ch.URI, url+"/throttledthirdparty/01.00/") {
			t.Fatalf("herald open --json: %+v", ch)
		}
		plain, code := cli(t, env, herald, "open", "demo", "--socket", socket)
		if code != 0 || plain != ch.URI+"\n" {
			t.Fatalf("herald open printed %q (exit %d), want the URI alone: %s", plain, code, ch.URI)
		}
		var sleeper openOutput
		cliJSON(t, &sleeper, env, herald, "open", "sleeper", "--json")

		// Toast with nobody listening: the shell shows it.
		mustSend(t, env, heraldsvc, "toast", ch.URI, "--text1", "Hello", "--text2", "World", "--param", "/Page.xaml?k=v")
		var toasts []toastOutput
		testenv.Eventually(t, 15*time.Second, "herald toasts", func() bool {
			toasts = nil
			cliJSON(t, &toasts, env, herald, "toasts", "--json")
			return len(toasts) > 0
		})
		if len(toasts) != 1 || toasts[0].App != "demo" || toasts[0].Text1 != "Hello" || toasts[0].Text2 != "World" ||
			toasts[0].Param != "/Page.xaml?k=v" {
			t.Fatalf("herald toasts --json: %+v", toasts)
		}
		if _, err := time.Parse(time.RFC3339, toasts[0].ReceivedAt); err != nil {
			t.Fatalf("received_at %q is not RFC 3339: %v", toasts[0].ReceivedAt, err)
		}

		// Tile updates merge field by field.
		steps := []struct {
			args []string
			want map[string]string
		}{
			{[]string{"--title", "Inbox", "--count", "5"}, map[string]string{"Title": "Inbox", "Count": "5"}},
			{[]string{"--count", "7", "--back-title", "Unread"}, map[string]string{"Title": "Inbox", "Count": "7", "BackTitle": "Unread"}},
			{[]string{"--clear", "Count"}, map[string]string{"Title": "Inbox", "BackTitle": "Unread"}},
		}
		for _, st := range steps {
			mustSend(t, env, heraldsvc, append([]string{"tile", ch.URI}, st.args...)...)
			var tiles []tileOutput
			testenv.Eventually(t, 15*time.Second, fmt.Sprintf("tile after %v", st.args), func() bool {
				// A fresh slice each time: json.Unmarshal would merge into
				// the maps of the elements it reuses.
				tiles = nil
				cliJSON(t, &tiles, env, herald, "tiles", "--json")
				return len(tiles) == 1 && maps.Equal(tiles[0].Fields, st.want)
			})
			if tiles[0].App != "demo" || tiles[0].TileID != "" || tiles[0].Template != "" {
				t.Fatalf("herald tiles --json: %+v", tiles)
			}
		}

		// The app runs: raw and toast come to it.
		listen := startProc(t, env, herald, "listen", "demo")
		if e := listen.readEvent(t); e.Type != "connection" || e.Connected == nil || !*e.Connected {
			t.Fatalf("herald listen's first line: %+v, want the link status", e)
		}
		raw := []byte{0, 1, 2, 0xff, 0xfe, '<', '>', '&', '\n', 'x'}
		rawFile := filepath.Join(dir, "raw.bin")
		if err := os.WriteFile(rawFile, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		sent := mustSend(t, env, heraldsvc, "raw", ch.URI, "--file", rawFile, "--message-id", "raw-1")
		if e := listen.readEvent(t); e.Type != "raw" || e.App != "demo" || e.MessageID != sent.MessageID || !bytes.Equal(e.Body, raw) {
			t.Fatalf("herald listen printed %+v, want raw %q with message id %s", e, raw, sent.MessageID)
		}
		mustSend(t, env, heraldsvc, "toast", ch.URI, "--text1", "Hi", "--text2", "there", "--param", "?x=1")
		if e := listen.readEvent(t); e.Type != "toast" || e.App != "demo" || e.Text1 != "Hi" || e.Text2 != "there" || e.Param != "?x=1" {
			t.Fatalf("herald listen printed %+v, want the toast", e)
		}
		listen.stop(t)

		// An app that is not running loses its raw notifications.
		mustSend(t, env, heraldsvc, "raw", sleeper.URI, "--body", `{"sync":true}`)
		testenv.Eventually(t, 15*time.Second, "raw_dropped", func() bool {
			var st app.Status
			cliJSON(t, &st, env, herald, "status", "--json")
			return st.Counters["raw_dropped"] == 1 && st.Counters["raw_delivered"] == 1
		})

		d.stop(t)
		svc.stop(t)
	})

	t.Run("restarts", func(t *testing.T) {
		dir := t.TempDir()
		socket := testenv.SocketPath(t)
		env := childEnv("HERALD_SOCKET=" + socket)
		db, data, config := filepath.Join(dir, "heraldsvc.db"), filepath.Join(dir, "data"), daemonConfig(t)
		serve := func(listen string) (*proc, string) {
			t.Helper()
			p := startProc(t, env, heraldsvc, "serve", "--listen", listen, "--db", db)
			first := p.readLine(t)
			m := svcListening.FindStringSubmatch(first)
			if m == nil {
				t.Fatalf("heraldsvc serve printed %q first", first)
			}
			return p, m[1]
		}
		svc, addr := serve("127.0.0.1:0")
		url := "http://" + addr
		run := func() *proc {
			t.Helper()
			p := startProc(t, env, herald, "run", "--service", url, "--data", data, "--socket", socket, "--config", config)
			waitLinkUp(t, socket)
			return p
		}
		status := func() app.Status {
			t.Helper()
			var st app.Status
			cliJSON(t, &st, env, herald, "status", "--json")
			return st
		}
		toastCount := func(n int) {
			t.Helper()
			testenv.Eventually(t, 15*time.Second, fmt.Sprintf("%d toasts", n), func() bool {
				var toasts []toastOutput
				cliJSON(t, &toasts, env, herald, "toasts", "--json")
				return len(toasts) == n
			})
		}

		d := run()
		var ch openOutput
		cliJSON(t, &ch, env, herald, "open", "demo", "--toast", "--json")
		id := status().DeviceID

		d.stop(t)
		d = run()
		var again openOutput
		cliJSON(t, &again, env, herald, "open", "demo", "--toast", "--json")
		if again.URI != ch.URI {
			t.Fatalf("herald open after a daemon restart: %s, want %s", again.URI, ch.URI)
		}
		if got := status().DeviceID; got != id {
			t.Fatalf("device id %s after a daemon restart, want %s", got, id)
		}
		mustSend(t, env, heraldsvc, "toast", ch.URI, "--text1", "after the daemon restarted")
		toastCount(1)

		svc.stop(t)
		testenv.Eventually(t, 15*time.Second, "link down", func() bool { return !status().Connected })
		svc, _ = serve(addr)
		// The daemon comes back on its own backoff, which runs on its real
		// clock: at most a few seconds after so short an outage.
		waitLinkUp(t, socket)
		if got := status().DeviceID; got != id {
			t.Fatalf("device id %s after a service restart, want %s", got, id)
		}
		mustSend(t, env, heraldsvc, "toast", ch.URI, "--text1", "after the service restarted")
		toastCount(2)

		d.stop(t)
		svc.stop(t)
	})

	t.Run("embedded service", func(t *testing.T) {
		socket := testenv.SocketPath(t)
		env := childEnv("HERALD_SOCKET=" + socket)
		d := startProc(t, env, herald, "run", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--socket", socket,
			"--config", daemonConfig(t))
		first := d.readLine(t)
		m := embeddedURL.FindStringSubmatch(first)
		if m == nil {
			t.Fatalf("herald run printed %q first, want the service URL", first)
		}
		waitLinkUp(t, socket)
		if out := d.stdout.String(); !strings.Contains(out, "curl") {
			t.Fatalf("herald run does not say how to send a first toast:\n%s", out)
		}
		var ch openOutput
		cliJSON(t, &ch, env, herald, "open", "demo", "--toast", "--json")
		if !strings.HasPrefix(ch.URI, m[1]+"/") {
			t.Fatalf("channel URI %s is not under %s", ch.URI, m[1])
		}
		mustReceive(t, ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "first", body: toastXML("Hello", "embedded")})
		var toasts []toastOutput
		testenv.Eventually(t, 15*time.Second, "herald toasts", func() bool {
			toasts = nil
			cliJSON(t, &toasts, env, herald, "toasts", "--json")
			return len(toasts) > 0
		})
		if len(toasts) != 1 || toasts[0].Text2 != "embedded" {
			t.Fatalf("herald toasts --json: %+v", toasts)
		}
		d.stop(t)
	})
}
