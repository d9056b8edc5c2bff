package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/freeport"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// crashWait bounds every wait on the processes under test; it is a failsafe
// against hangs, not a timing assertion.
const crashWait = 30 * time.Second

// crashBuild builds cmd/<name> into a temporary directory and returns the
// binary's path.
func crashBuild(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/"+name)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", name, err, out)
	}
	return bin
}

// crashFreeAddr returns a loopback address nothing listens on, so a
// restarted service can come back on the same port (and channel URIs).
func crashFreeAddr(t *testing.T) string {
	t.Helper()
	return freeport.Addr(t)
}

// crashProc is a process the test kills.
type crashProc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

func crashStart(t *testing.T, logPath, bin string, args ...string) *crashProc {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Dir(logPath)}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting %s: %v", bin, err)
	}
	p := &crashProc{t: t, name: filepath.Base(bin), cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *crashProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.log.Close()
}

// crashDumpLogs prints the processes' logs when the test failed.
func crashDumpLogs(t *testing.T, paths ...string) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, p := range paths {
			b, _ := os.ReadFile(p)
			if len(b) > 20000 {
				b = b[len(b)-20000:]
			}
			t.Logf("--- %s (tail) ---\n%s", filepath.Base(p), b)
		}
	})
}

// crashPost sends one notification and reports whether it was answered
// Received.
func crashPost(client *http.Client, uri string, kind mpns.Kind, messageID string, body []byte) bool {
	req, err := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
	if err != nil {
		return false
	}
	if target := kind.Target(); target != "" {
		req.Header.Set(mpns.HeaderTarget, target)
	}
	req.Header.Set(mpns.HeaderMessageID, messageID)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK && resp.Header.Get(mpns.HeaderNotificationStatus) == mpns.StatusReceived
}

// crashSentinel posts a last toast under fresh ids sentinel-0, sentinel-1,
// … until one is answered Received, and returns that id. One answered
// otherwise (a node shedding load a moment after a fault) may have been
// stored all the same, so each try has its own id.
func crashSentinel(t *testing.T, client *http.Client, uri string) string {
	t.Helper()
	var id string
	n := 0
	testenv.Eventually(t, crashWait, "sentinel accepted", func() bool {
		id = fmt.Sprintf("sentinel-%d", n)
		n++
		return crashPost(client, uri, mpns.KindToast, id, (&mpns.Toast{Text1: id}).XML())
	})
	return id
}

// deliverAllBut records toasts on the ledger, except the sentinels, which
// it checks were each shown at most once.
func (l *crashLedger) deliverAllBut(t *testing.T, toasts map[string]int) {
	t.Helper()
	for id, n := range toasts {
		if strings.HasPrefix(id, "sentinel-") {
			if n > 1 {
				t.Errorf("%s shown %d times", id, n)
			}
			continue
		}
		for range n {
			l.deliver(id)
		}
	}
}

// crashLedger is what the senders sent and what the device delivered, by
// X-MessageID.
type crashLedger struct {
	mu        sync.Mutex
	sent      []string
	received  map[string]bool // answered Received
	delivered map[string]int  // times seen on the device
}

func newCrashLedger() *crashLedger {
	return &crashLedger{received: map[string]bool{}, delivered: map[string]int{}}
}

func (l *crashLedger) record(id string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sent = append(l.sent, id)
	if ok {
		l.received[id] = true
	}
}

func (l *crashLedger) answered() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.sent)
}

func (l *crashLedger) deliver(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.delivered[id]++
}

// missing lists the ids answered Received not yet delivered.
func (l *crashLedger) missing() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for id := range l.received {
		if l.delivered[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// check fails the test on anything lost or delivered twice and returns
// the counts for the log.
func (l *crashLedger) check(t *testing.T, what string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	dups, extra := 0, 0
	for id, n := range l.delivered {
		if n > 1 {
			dups++
			t.Errorf("%s: %s delivered %d times", what, id, n)
		}
		if !l.received[id] {
			extra++ // committed, but the answer was lost with the process
		}
	}
	delivered := len(l.delivered)
	lost := 0
	for id := range l.received {
		if l.delivered[id] == 0 {
			lost++
			t.Errorf("%s: %s answered Received, never delivered", what, id)
		}
	}
	t.Logf("%s: sent %d, answered Received %d, delivered %d (%d of them not answered Received), lost %d, duplicates %d",
		what, len(l.sent), len(l.received), delivered, extra, lost, dups)
}

// crashCollectToasts records every toast in the daemon's table.
func crashCollectToasts(t *testing.T, c *app.Client, appID string) map[string]int {
	t.Helper()
	toasts, err := c.Toasts(context.Background(), appID)
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, ts := range toasts {
		out[ts.MessageID]++
	}
	return out
}

// crashListen runs the app's event stream in the background and records
// each raw notification's X-MessageID.
func crashListen(t *testing.T, c *app.Client, appID string, ledger *crashLedger) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := c.Listen(ctx, appID, app.ListenOptions{Reconnect: true, RetryEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			e, err := stream.Next(ctx)
			if err != nil {
				return
			}
			if e.Type == app.EventRaw {
				ledger.deliver(e.MessageID)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		stream.Close()
	})
}

// TestCrashService SIGKILLs heraldsvc at a random point of a burst of
// concurrent POSTs, several times, restarting it on the same database and
// port each time: every notification answered Received reaches the daemon
// exactly once.
func TestCrashService(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	t.Parallel()
	svcBin := crashBuild(t, "heraldsvc")
	dir := t.TempDir()
	addr := crashFreeAddr(t)
	db := filepath.Join(dir, "heraldsvc.db")
	svcLog := filepath.Join(dir, "heraldsvc.log")
	crashDumpLogs(t, svcLog)
	startSvc := func() *crashProc {
		p := crashStart(t, svcLog, svcBin, "serve", "--listen", addr, "--db", db, "--log-level", "debug")
		testenv.Eventually(t, crashWait, "heraldsvc listening", func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		return p
	}
	svc := startSvc()

	// The daemon is in this process, with a short reconnect backoff so it
	// is back soon after each restart; what is under test is the service.
	d := testenv.StartDaemon(t, daemon.Config{Service: "http://" + addr,
		Link: channel.Config{BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond}})
	yes := true
	ch, err := d.Client.Open(context.Background(), "crashapp", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	ledger := newCrashLedger()
	crashListen(t, d.Client, "crashapp", ledger)

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	client := &http.Client{Timeout: 10 * time.Second}
	const runs, perRun, senders = 3, 120, 8
	for run := 0; run < runs; run++ {
		killAt := 5 + rng.IntN(perRun-10)
		var next atomic.Int64
		base := ledger.answered()
		var wg sync.WaitGroup
		for s := 0; s < senders; s++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1))
					if i > perRun {
						return
					}
					id := fmt.Sprintf("r%d-%03d", run, i)
					if i%2 == 0 {
						ledger.record(id, crashPost(client, ch.URI, mpns.KindRaw, id, []byte(id)))
					} else {
						ledger.record(id, crashPost(client, ch.URI, mpns.KindToast, id, (&mpns.Toast{Text1: id}).XML()))
					}
				}
			}()
		}
		testenv.Eventually(t, crashWait, "burst under way", func() bool { return ledger.answered()-base >= killAt })
		svc.kill()
		wg.Wait()
		t.Logf("run %d: killed after %d answers", run, killAt)
		svc = startSvc()
	}

	// A last toast after everything: delivery is in sequence order, so once
	// it is in, anything resent would have come before it.
	sentinel := crashSentinel(t, client, ch.URI)
	testenv.Eventually(t, crashWait, "every Received notification delivered", func() bool {
		toasts := crashCollectToasts(t, d.Client, "crashapp")
		return toasts[sentinel] == 1 && len(ledger.missingAfter(toasts)) == 0
	})
	ledger.deliverAllBut(t, crashCollectToasts(t, d.Client, "crashapp"))
	ledger.check(t, "service crash")
}

// missingAfter is missing, counting toasts from the daemon's table too.
func (l *crashLedger) missingAfter(toasts map[string]int) []string {
	var out []string
	for _, id := range l.missing() {
		if toasts[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// TestCrashDaemon SIGKILLs `herald run` during a burst of toasts, tile
// updates and raw notifications to a listening app, several times: after
// each restart the toasts table, the tile state and the raw events the app
// got match what was sent, none missing, none twice.
func TestCrashDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills real processes")
	}
	t.Parallel()
	heraldBin := crashBuild(t, "herald")
	svc := testenv.Service(t, "", server.ServeConfig{})
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	sock := testenv.SocketPath(t)
	conf := filepath.Join(dir, "herald.toml")
	// The OS's power level must not suppress anything mid-test.
	if err := os.WriteFile(conf, []byte("power = \"normal\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	daemonLog := filepath.Join(dir, "herald.log")
	crashDumpLogs(t, daemonLog)
	client := app.NewClient(sock)
	startDaemon := func() *crashProc {
		p := crashStart(t, daemonLog, heraldBin, "run", "--service", svc.URL(), "--data", data, "--socket", sock,
			"--config", conf, "--display", "log", "--log-level", "debug")
		testenv.Eventually(t, crashWait, "herald up and linked", func() bool {
			st, err := client.Status(context.Background())
			return err == nil && st.Connected
		})
		return p
	}
	herald := startDaemon()
	yes := true
	ch, err := client.Open(context.Background(), "crashapp", app.OpenRequest{Toast: &yes, Tile: &yes})
	if err != nil {
		t.Fatal(err)
	}
	raws := newCrashLedger()
	crashListen(t, client, "crashapp", raws)
	toasts := newCrashLedger()

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	httpc := &http.Client{Timeout: 10 * time.Second}
	// The tile sender is sequential, so the expected final state is the
	// result of applying its updates in order.
	var tileState mpns.TileState
	var tileSent, tileReceived int
	const kills, perPhase = 3, 90
	for phase := 0; phase < kills; phase++ {
		killAt := 5 + rng.IntN(perPhase-10)
		var answered atomic.Int64
		var wg sync.WaitGroup
		for _, send := range []func(i int){
			func(i int) {
				id := fmt.Sprintf("t%d-%03d", phase, i)
				toasts.record(id, crashPost(httpc, ch.URI, mpns.KindToast, id, (&mpns.Toast{Text1: id}).XML()))
			},
			func(i int) {
				id := fmt.Sprintf("r%d-%03d", phase, i)
				raws.record(id, crashPost(httpc, ch.URI, mpns.KindRaw, id, []byte(id)))
			},
			func(i int) {
				fields := []mpns.Field{{Name: "Count", Value: fmt.Sprint(i % 100)}, {Name: "Title", Value: fmt.Sprintf("p%d-%d", phase, i)}}
				switch i % 3 {
				case 0:
					fields = append(fields, mpns.Field{Name: "BackContent", Value: fmt.Sprint("back ", i)})
				case 1:
					fields = append(fields, mpns.Field{Name: "BackContent", Clear: true})
				}
				tile := &mpns.Tile{Fields: fields}
				tileSent++
				if crashPost(httpc, ch.URI, mpns.KindTile, fmt.Sprintf("k%d-%03d", phase, i), tile.XML()) {
					tileReceived++
					if err := tileState.Apply(tile); err != nil {
						t.Error(err)
					}
				} else {
					t.Errorf("tile update %d refused while the service is up", i)
				}
			},
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perPhase/3; i++ {
					send(i)
					answered.Add(1)
				}
			}()
		}
		testenv.Eventually(t, crashWait, "burst under way", func() bool { return int(answered.Load()) >= killAt })
		herald.kill()
		t.Logf("phase %d: daemon killed after %d answers", phase, killAt)
		herald = startDaemon()
		wg.Wait()
	}

	// The sentinel comes after everything in sequence order.
	if !crashPost(httpc, ch.URI, mpns.KindToast, "sentinel", (&mpns.Toast{Text1: "sentinel"}).XML()) {
		t.Fatal("sentinel refused")
	}
	testenv.Eventually(t, crashWait, "sentinel toast", func() bool { return crashCollectToasts(t, client, "crashapp")["sentinel"] == 1 })
	testenv.Eventually(t, crashWait, "every raw notification delivered to the app", func() bool { return len(raws.missing()) == 0 })
	for id, n := range crashCollectToasts(t, client, "crashapp") {
		if id == "sentinel" {
			continue
		}
		for i := 0; i < n; i++ {
			toasts.deliver(id)
		}
	}
	toasts.check(t, "daemon crash, toasts")
	raws.check(t, "daemon crash, raw")

	tiles, err := client.Tiles(context.Background(), "crashapp")
	if err != nil {
		t.Fatal(err)
	}
	if len(tiles) != 1 || fmt.Sprint(tiles[0].Fields) != fmt.Sprint(tileState.Fields) {
		t.Errorf("tile state %+v, want %v", tiles, tileState.Fields)
	}
	st, err := client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters[daemon.CountRawDropped] != 0 {
		t.Errorf("%d raw notifications dropped as if the app were not running", st.Counters[daemon.CountRawDropped])
	}
	t.Logf("daemon crash, tiles: sent %d, answered Received %d, final state matches: %v", tileSent, tileReceived, !t.Failed())
}
