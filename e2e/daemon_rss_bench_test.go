package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/internal/bench"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// BenchmarkDaemonRSS measures what the built herald daemon costs a device:
// its resident memory idle, then after a burst of notifications sent by
// cloud senders through a real service over loopback (toasts and tile
// updates for one app, raw notifications for a running app and for one
// that is not), and the rate it applied them at end to end. The burst is
// queued while the daemon's link is held offline (through its start
// screen's API, as a user would) and then let in at once, so the rate is
// the daemon's — websocket frames of up to 12, decode, apply, ack — and
// not the service's accept rate. Run it once:
//
//	go test -run '^$' -bench DaemonRSS -benchtime 1x ./e2e/
//
// HERALD_RSS_NOTIFICATIONS changes the burst (default 20,000); the
// daemon's own GOMEMLIMIT or GOGC may be passed in the environment.
func BenchmarkDaemonRSS(b *testing.B) {
	total := 20_000
	if v := os.Getenv("HERALD_RSS_NOTIFICATIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 4 || n > 200_000 || n%4 != 0 {
			b.Fatalf("HERALD_RSS_NOTIFICATIONS=%q: want a multiple of 4 from 4 to 200000", v)
		}
		total = n
	}
	herald := buildHerald(b)
	// The queue holds the whole burst, so senders never see QueueFull and
	// the burst measures the daemon, not the service's back pressure.
	svc := testenv.Service(b, "", server.ServeConfig{Server: server.Config{Limits: bench.Unlimited(), QueueDepth: total + 100}})

	dir := b.TempDir()
	config := filepath.Join(dir, "herald.toml")
	if err := os.WriteFile(config, []byte("display = \"log\"\npower = \"normal\"\nlog_level = \"warn\"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	socket := testenv.SocketPath(b)
	cmd := exec.Command(herald, "run", "--service", svc.URL(), "--data", filepath.Join(dir, "data"), "--socket", socket, "--config", config,
		"--ui", "127.0.0.1:0")
	var stderr bytes.Buffer
	stdout := &output{}
	cmd.Env, cmd.Stdout, cmd.Stderr = childEnv(extraEnv()...), stdout, &stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if b.Failed() {
			b.Logf("herald stderr:\n%s", stderr.String())
		}
	})
	var uiURL, uiKey string
	testenv.Eventually(b, 15*time.Second, "herald printing its start screen's address", func() bool {
		for i := 0; ; i++ {
			l, ok := stdout.line(i)
			if !ok {
				return false
			}
			if u, found := strings.CutPrefix(l, "herald: start screen "); found {
				// http://127.0.0.1:PORT/#key=KEY
				uiURL, uiKey, _ = strings.Cut(u, "#key=")
				uiURL = strings.TrimSuffix(uiURL, "/")
				return true
			}
		}
	})
	c := app.NewClient(socket)
	linkUp := func(up bool) {
		b.Helper()
		req, _ := http.NewRequest(http.MethodPost, uiURL+"/api/connectivity", strings.NewReader(`{"online":`+strconv.FormatBool(up)+`}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+uiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("setting the link online=%v: status %d", up, resp.StatusCode)
		}
		testenv.Eventually(b, 15*time.Second, fmt.Sprintf("link connected=%v", up), func() bool {
			st, err := c.Status(context.Background())
			return err == nil && st.Connected == up
		})
	}
	testenv.Eventually(b, 15*time.Second, "daemon link up", func() bool {
		st, err := c.Status(context.Background())
		return err == nil && st.Connected
	})
	yes := true
	uris := map[string]string{}
	for _, a := range []string{"mail", "chat", "sync"} {
		req := app.OpenRequest{}
		if a == "mail" {
			req.Toast, req.Tile = &yes, &yes
		}
		ch, err := c.Open(context.Background(), a, req)
		if err != nil {
			b.Fatal(err)
		}
		uris[a] = ch.URI
	}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := c.Listen(ctx, "chat", app.ListenOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var taken atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			e, err := stream.Next(ctx)
			if err != nil {
				return
			}
			if e.Type == app.EventRaw {
				taken.Add(1)
			}
		}
	}()
	b.Cleanup(func() {
		cancel()
		stream.Close()
		wg.Wait()
	})

	pid := cmd.Process.Pid
	idle := procMemory(b, pid)
	counters := func() map[string]int64 {
		st, err := c.Status(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		return st.Counters
	}
	quarter := int64(total / 4)
	var rate float64
	var after procMem
	var tiles int64
	var accepted time.Duration
	var queued procMem
	var cpuPer time.Duration
	for i := 0; b.Loop(); i++ {
		before := counters()
		linkUp(false)
		begin := time.Now()
		sendBurst(b, uris, total, i*(total+1))
		accepted = time.Since(begin)
		// Queued tile updates merge in the service, so the count of tile
		// updates applied says nothing of the end. One more raw
		// notification, sent after every other was accepted, is applied
		// after all of them.
		sendOne(b, uris["sync"], i*(total+1)+total)
		queued = procMemory(b, pid)
		cpu0 := procCPU(b, pid)
		begin = time.Now()
		linkUp(true)
		var now map[string]int64
		testenv.Eventually(b, 3*time.Minute, "the daemon applying the burst", func() bool {
			now = counters()
			return now["raw_dropped"]-before["raw_dropped"] == quarter+1
		})
		rate = float64(total+1) / time.Since(begin).Seconds()
		after = procMemory(b, pid)
		cpuPer = (procCPU(b, pid) - cpu0) / time.Duration(total+1)
		for _, c := range []struct {
			name string
			want int64
		}{{"toasts_shell", quarter}, {"raw_delivered", quarter}, {"payload_errors", 0}, {"bad_content", 0}} {
			if got := now[c.name] - before[c.name]; got != c.want {
				b.Errorf("%s went up by %d, want %d", c.name, got, c.want)
			}
		}
		tiles = now["tiles_updated"] - before["tiles_updated"]
		if tiles < 1 || tiles > quarter {
			b.Errorf("tiles_updated went up by %d, want 1 to %d", tiles, quarter)
		}
	}
	testenv.Eventually(b, time.Minute, "the chat app taking its raw notifications", func() bool { return taken.Load() == int64(b.N)*quarter })
	b.ReportMetric(float64(idle.rssKiB)/1024, "idle-RSS-MB")
	b.ReportMetric(float64(queued.rssKiB)/1024, "offline-RSS-MB")
	b.ReportMetric(float64(after.rssKiB)/1024, "after-RSS-MB")
	b.ReportMetric(float64(after.hwmKiB)/1024, "peak-RSS-MB")
	b.ReportMetric(float64(after.anonKiB)/1024, "after-anon-MB")
	b.ReportMetric(float64(after.fileKiB+after.shmemKiB)/1024, "after-file-MB")
	b.ReportMetric(rate, "applies/s")
	b.ReportMetric(float64(total)/accepted.Seconds(), "accepts/s")
	b.ReportMetric(float64(cpuPer.Nanoseconds())/1e3, "daemon-cpu-µs/apply")
	b.ReportMetric(float64(tiles), "tile-applies")
}

// sendOne posts one raw notification.
func sendOne(tb testing.TB, uri string, i int) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, uri, strings.NewReader(`{"last":true}`))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("X-NotificationClass", "3")
	req.Header.Set("X-MessageID", fmt.Sprintf("3f2504e0-4f89-11d3-9a0c-%012d", i))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("last notification: status %d", resp.StatusCode)
	}
}

// sendBurst posts n notifications, a quarter of each kind, from 16
// senders at once, each keeping its connection alive as sender libraries
// do.
func sendBurst(tb testing.TB, uris map[string]string, n, base int) {
	tb.Helper()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	const senders = 16
	next := make(chan int)
	errc := make(chan error, senders)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var uri, target, class string
				var body []byte
				switch i % 4 {
				case 0:
					uri, target, class, body = uris["mail"], "toast", "2", toastXML("Anna Lindqvist", fmt.Sprintf("Message %d: are we still on for lunch?", i))
				case 1:
					uri, target, class, body = uris["mail"], "token", "1",
						tileXML(fmt.Sprintf(`<wp:Count>%d</wp:Count><wp:Title>Work mail</wp:Title><wp:BackContent>Quarterly report draft</wp:BackContent>`, i%99))
				case 2:
					uri, class, body = uris["chat"], "3", []byte(`{"sync":true,"folder":"inbox","n":`+strconv.Itoa(i)+`}`)
				default:
					uri, class, body = uris["sync"], "3", []byte(`{"sync":true,"n":`+strconv.Itoa(i)+`}`)
				}
				req, err := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
				if err != nil {
					errc <- err
					return
				}
				req.Header.Set("Content-Type", "text/xml")
				req.Header.Set("X-NotificationClass", class)
				req.Header.Set("X-MessageID", fmt.Sprintf("3f2504e0-4f89-11d3-9a0c-%012d", base+i))
				if target != "" {
					req.Header.Set("X-WindowsPhone-Target", target)
				}
				resp, err := client.Do(req)
				if err != nil {
					errc <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.Header.Get("X-NotificationStatus") != "Received" {
					errc <- fmt.Errorf("notification %d: %d %s", i, resp.StatusCode, resp.Header.Get("X-NotificationStatus"))
					return
				}
			}
		}()
	}
	var failed error
feed:
	for i := range n {
		select {
		case next <- i:
		case failed = <-errc:
			break feed
		}
	}
	close(next)
	wg.Wait()
	if failed == nil && len(errc) > 0 {
		failed = <-errc
	}
	if failed != nil {
		tb.Fatal(failed)
	}
}

// extraEnv passes GOGC and GOMEMLIMIT on to the daemon when set, so the
// benchmark can compare the runtime's settings.
func extraEnv() []string {
	var out []string
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if v, ok := os.LookupEnv("HERALD_RSS_" + k); ok {
			out = append(out, k+"="+v)
		}
	}
	return out
}

type procMem struct{ rssKiB, hwmKiB, anonKiB, fileKiB, shmemKiB int64 }

// procMemory reads a process's resident memory and its peak from
// /proc/PID/status.
func procMemory(tb testing.TB, pid int) procMem {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Skipf("no /proc to read the daemon's memory from: %v", err)
	}
	var m procMem
	for line := range strings.Lines(string(b)) {
		for _, f := range []struct {
			prefix string
			dst    *int64
		}{{"VmRSS:", &m.rssKiB}, {"VmHWM:", &m.hwmKiB}, {"RssAnon:", &m.anonKiB}, {"RssFile:", &m.fileKiB}, {"RssShmem:", &m.shmemKiB}} {
			if rest, ok := strings.CutPrefix(line, f.prefix); ok {
				if fs := strings.Fields(rest); len(fs) > 0 {
					*f.dst, _ = strconv.ParseInt(fs[0], 10, 64)
				}
			}
		}
	}
	if m.rssKiB == 0 {
		tb.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	return m
}

// procCPU reads the user and system CPU time a process has used from
// /proc/PID/stat (in clock ticks of 10 ms, Linux's USER_HZ).
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name may hold spaces; count fields after it.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		tb.Fatalf("unexpected /proc/%d/stat: %q", pid, b)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// buildHerald builds the herald binary as it ships (no debug symbols).
func buildHerald(tb testing.TB) string {
	tb.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		tb.Skipf("no go command to build herald: %v", err)
	}
	dir := tb.TempDir()
	cmd := exec.Command(goBin, "build", "-ldflags=-s -w", "-o", filepath.Join(dir, "herald"), "./cmd/herald")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "herald")
}
