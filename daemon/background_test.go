package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/server"
)

// writeScript writes a shell script into dir and returns the handler
// command that runs it.
func writeScript(t *testing.T, dir, body string) []string {
	t.Helper()
	path := filepath.Join(dir, "handler.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{"/bin/sh", path}
}

// sendRaw posts a raw notification to uri as a cloud service would.
func sendRaw(t *testing.T, uri, messageID string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(mpns.HeaderNotificationClass, "3")
	req.Header.Set(mpns.HeaderMessageID, messageID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(mpns.HeaderNotificationStatus) != mpns.StatusReceived {
		t.Fatalf("raw send: %d %q", resp.StatusCode, resp.Header.Get(mpns.HeaderNotificationStatus))
	}
}

func messageID(i int) string { return fmt.Sprintf("00000000-0000-0000-0000-%012d", i) }

// openChannel opens appID's channel without running the app.
func openChannel(t *testing.T, d *testenv.Daemon, appID string) app.Channel {
	t.Helper()
	ch, err := d.Client.Open(context.Background(), appID, app.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func counter(t *testing.T, d *testenv.Daemon, name string) int64 {
	t.Helper()
	c, err := d.StoreForTest().Counters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c[name]
}

func jobs(t *testing.T, d *testenv.Daemon) (pending, running int) {
	t.Helper()
	p, r, err := d.StoreForTest().HandlerJobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return p, r
}

func countFiles(t *testing.T, pattern string) int {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

// TestBackgroundHandlerOutcomes sends a raw notification to an app that is
// not running and checks what its handler (or the lack of one) does.
func TestBackgroundHandlerOutcomes(t *testing.T) {
	tests := []struct {
		name        string
		script      string // "" = no handler configured
		wantCounter string
		wantRan     bool
	}{
		{"runs with the payload", `cat > "$OUT/$HERALD_MESSAGE_ID.body"; env > "$OUT/$HERALD_MESSAGE_ID.env"`, daemon.CountHandlerOK, true},
		{"failure is counted", `cat > "$OUT/$HERALD_MESSAGE_ID.body"; echo oops >&2; exit 3`, daemon.CountHandlerFailed, true},
		{"missing program is counted", "", daemon.CountHandlerFailed, false},
		{"no handler drops", "-", daemon.CountRawDropped, false},
	}
	svc := testenv.Service(t, "", server.ServeConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			t.Setenv("OUT", out)
			handlers := map[string]platform.Handler{}
			switch tt.script {
			case "-":
			case "":
				handlers["notes"] = platform.Handler{Command: []string{filepath.Join(out, "does-not-exist")}}
			default:
				handlers["notes"] = platform.Handler{Command: writeScript(t, t.TempDir(), tt.script), Timeout: platform.Duration{Duration: time.Minute}}
			}
			d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), Handlers: handlers})
			ch := openChannel(t, d, "notes")
			payload := []byte(`{"sync":"inbox"}`)
			sendRaw(t, ch.URI, messageID(1), payload)

			testenv.Eventually(t, 10*time.Second, tt.wantCounter, func() bool { return counter(t, d, tt.wantCounter) == 1 })
			if p, r := jobs(t, d); p+r != 0 {
				t.Errorf("jobs left: %d pending, %d running", p, r)
			}
			for _, other := range []string{daemon.CountHandlerOK, daemon.CountHandlerFailed, daemon.CountRawDropped, daemon.CountRawDelivered} {
				if other != tt.wantCounter && counter(t, d, other) != 0 {
					t.Errorf("counter %s = %d, want 0", other, counter(t, d, other))
				}
			}
			body, err := os.ReadFile(filepath.Join(out, messageID(1)+".body"))
			if !tt.wantRan {
				if err == nil {
					t.Errorf("handler ran")
				}
				return
			}
			if err != nil {
				t.Fatalf("handler did not get the payload: %v", err)
			}
			if !bytes.Equal(body, payload) {
				t.Errorf("stdin = %q, want %q", body, payload)
			}
			if tt.wantCounter != daemon.CountHandlerOK {
				return
			}
			env, err := os.ReadFile(filepath.Join(out, messageID(1)+".env"))
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"HERALD_APP=notes", "HERALD_MESSAGE_ID=" + messageID(1), "HERALD_SOCKET=" + d.Socket} {
				if !strings.Contains(string(env), want+"\n") {
					t.Errorf("environment lacks %s", want)
				}
			}
		})
	}
}

// TestBackgroundHandlerTimeout kills a handler that outlives its timeout,
// which runs on the daemon's (fake) clock.
func TestBackgroundHandlerTimeout(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	out := t.TempDir()
	t.Setenv("OUT", out)
	fake := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cmd := writeScript(t, t.TempDir(), `echo $$ > "$OUT/started"; sleep 600; touch "$OUT/finished"`)
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), Clock: fake,
		Handlers: map[string]platform.Handler{"notes": {Command: cmd, Timeout: platform.Duration{Duration: 10 * time.Second}}}})
	ch := openChannel(t, d, "notes")
	sendRaw(t, ch.URI, messageID(1), []byte("x"))

	// The timer is armed before the command starts.
	testenv.Eventually(t, 10*time.Second, "handler started", func() bool { return countFiles(t, filepath.Join(out, "started")) == 1 })
	fake.Advance(9 * time.Second)
	if _, r := jobs(t, d); r != 1 || counter(t, d, daemon.CountHandlerTimeouts) != 0 {
		t.Fatalf("before the timeout: running %d, timeouts %d", r, counter(t, d, daemon.CountHandlerTimeouts))
	}
	fake.Advance(time.Second)
	testenv.Eventually(t, 10*time.Second, "timeout counted", func() bool { return counter(t, d, daemon.CountHandlerTimeouts) == 1 })
	if p, r := jobs(t, d); p+r != 0 {
		t.Errorf("jobs left: %d pending, %d running", p, r)
	}
	if counter(t, d, daemon.CountHandlerOK)+counter(t, d, daemon.CountHandlerFailed) != 0 {
		t.Errorf("a timed-out handler counted as ok or failed")
	}
	if countFiles(t, filepath.Join(out, "finished")) != 0 {
		t.Errorf("the handler ran to its end")
	}
}

// TestBackgroundHandlerConcurrency checks that no more than
// HandlerConcurrency commands run at once, and that the rest wait their
// turn rather than being dropped.
func TestBackgroundHandlerConcurrency(t *testing.T) {
	const n, bound = 5, 2
	svc := testenv.Service(t, "", server.ServeConfig{})
	out := t.TempDir()
	t.Setenv("OUT", out)
	cmd := writeScript(t, t.TempDir(), `touch "$OUT/started.$HERALD_MESSAGE_ID"
while [ ! -e "$OUT/release" ]; do sleep 0.02; done
touch "$OUT/done.$HERALD_MESSAGE_ID"`)
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), HandlerConcurrency: bound,
		Handlers: map[string]platform.Handler{"notes": {Command: cmd, Timeout: platform.Duration{Duration: time.Minute}}}})
	ch := openChannel(t, d, "notes")
	for i := range n {
		sendRaw(t, ch.URI, messageID(i), []byte{byte(i)})
	}
	// With the bound reached and nothing able to finish, this state is
	// stable: a third command would show up as a third started file.
	testenv.Eventually(t, 10*time.Second, "bound reached", func() bool {
		p, r := jobs(t, d)
		return p == n-bound && r == bound && countFiles(t, filepath.Join(out, "started.*")) == bound
	})
	if err := os.WriteFile(filepath.Join(out, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "all handlers done", func() bool { return counter(t, d, daemon.CountHandlerOK) == n })
	if got := countFiles(t, filepath.Join(out, "done.*")); got != n {
		t.Errorf("%d handlers finished, want %d", got, n)
	}
	if p, r := jobs(t, d); p+r != 0 {
		t.Errorf("jobs left: %d pending, %d running", p, r)
	}
}

// TestBackgroundHandlerInterrupted stops the daemon while a handler runs:
// the job survives in the database and runs once more at the next start
// (at least once), and a job interrupted twice is abandoned (at most
// twice). The notification itself is never applied again.
func TestBackgroundHandlerInterrupted(t *testing.T) {
	tests := []struct {
		name        string
		secondEnds  bool // the second run finishes rather than being interrupted too
		wantCounter string
	}{
		{"second run completes", true, daemon.CountHandlerOK},
		{"interrupted twice is abandoned", false, daemon.CountHandlerAbandoned},
	}
	svc := testenv.Service(t, "", server.ServeConfig{})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			t.Setenv("OUT", out)
			cmd := writeScript(t, t.TempDir(), `echo "$HERALD_MESSAGE_ID" >> "$OUT/runs"
[ -e "$OUT/release" ] && exit 0
while :; do sleep 0.02; done`)
			cfg := daemon.Config{Service: svc.URL(), DataDir: t.TempDir(),
				Handlers: map[string]platform.Handler{"notes": {Command: cmd, Timeout: platform.Duration{Duration: time.Minute}}}}
			runs := func() string {
				b, _ := os.ReadFile(filepath.Join(out, "runs"))
				return string(b)
			}
			id := messageID(10 + i)
			wantRuns := func(n int) string { return strings.Repeat(id+"\n", n) }

			d := testenv.StartDaemon(t, cfg)
			sendRaw(t, openChannel(t, d, "notes").URI, id, []byte("x"))
			testenv.Eventually(t, 10*time.Second, "first run", func() bool { return runs() == wantRuns(1) })
			d.Stop()

			if tt.secondEnds {
				if err := os.WriteFile(filepath.Join(out, "release"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			d = testenv.StartDaemon(t, cfg)
			if !tt.secondEnds {
				testenv.Eventually(t, 10*time.Second, "second run", func() bool { return runs() == wantRuns(2) })
				d.Stop()
				d = testenv.StartDaemon(t, cfg)
			}
			testenv.Eventually(t, 10*time.Second, tt.wantCounter, func() bool { return counter(t, d, tt.wantCounter) == 1 })
			if got := runs(); got != wantRuns(2) {
				t.Errorf("runs = %q, want %q", got, wantRuns(2))
			}
			if got := counter(t, d, daemon.CountHandlerQueued); got != 1 {
				t.Errorf("%s = %d, want 1 (the notification was applied again)", daemon.CountHandlerQueued, got)
			}
			if p, r := jobs(t, d); p+r != 0 {
				t.Errorf("jobs left: %d pending, %d running", p, r)
			}
		})
	}
}

// BenchmarkBackgroundHandler measures raw notifications through
// background handlers end to end: the sender's POST, the service, the
// link, the apply transaction with its job, and a run of /bin/true, with
// the default concurrency bound. Run with a bounded count, e.g.
// -benchtime=200x.
func BenchmarkBackgroundHandler(b *testing.B) {
	svc := testenv.Service(b, "", server.ServeConfig{})
	// The backlog bound is lifted: senders here outrun the handlers.
	d := testenv.StartDaemon(b, daemon.Config{Service: svc.URL(), HandlerBacklog: b.N + 1,
		Handlers: map[string]platform.Handler{"notes": {Command: []string{"/bin/true"}, Timeout: platform.Duration{Duration: time.Minute}}}})
	ch, err := d.Client.Open(context.Background(), "notes", app.OpenRequest{})
	if err != nil {
		b.Fatal(err)
	}
	ok := func() int64 {
		c, err := d.StoreForTest().Counters(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		return c[daemon.CountHandlerOK]
	}
	start := ok()
	b.ResetTimer()
	for i := range b.N {
		req, _ := http.NewRequest(http.MethodPost, ch.URI, bytes.NewReader([]byte("x")))
		req.Header.Set(mpns.HeaderNotificationClass, "3")
		req.Header.Set(mpns.HeaderMessageID, messageID(i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("send %d: status %d", i, resp.StatusCode)
		}
	}
	testenv.Eventually(b, time.Minute, "handlers done", func() bool { return ok()-start == int64(b.N) })
}

// TestBackgroundHandlerBacklog checks that an app's queued jobs are
// bounded: what arrives beyond the backlog is dropped and counted.
func TestBackgroundHandlerBacklog(t *testing.T) {
	const backlog, n = 3, 5
	svc := testenv.Service(t, "", server.ServeConfig{})
	out := t.TempDir()
	t.Setenv("OUT", out)
	cmd := writeScript(t, t.TempDir(), `echo "$HERALD_MESSAGE_ID" >> "$OUT/runs"
while [ ! -e "$OUT/release" ]; do sleep 0.02; done`)
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), HandlerConcurrency: 1, HandlerBacklog: backlog,
		Handlers: map[string]platform.Handler{"notes": {Command: cmd, Timeout: platform.Duration{Duration: time.Minute}}}})
	ch := openChannel(t, d, "notes")
	for i := range n {
		sendRaw(t, ch.URI, messageID(i), []byte{byte(i)})
	}
	testenv.Eventually(t, 10*time.Second, "overflow counted", func() bool { return counter(t, d, daemon.CountHandlerOverflow) == n-backlog })
	if got := counter(t, d, daemon.CountHandlerQueued); got != backlog {
		t.Errorf("%s = %d, want %d", daemon.CountHandlerQueued, got, backlog)
	}
	if err := os.WriteFile(filepath.Join(out, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "queued handlers done", func() bool { return counter(t, d, daemon.CountHandlerOK) == backlog })
	b, err := os.ReadFile(filepath.Join(out, "runs"))
	if err != nil {
		t.Fatal(err)
	}
	if want := messageID(0) + "\n" + messageID(1) + "\n" + messageID(2) + "\n"; string(b) != want {
		t.Errorf("runs = %q, want the first %d in order: %q", b, backlog, want)
	}
}
