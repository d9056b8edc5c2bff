package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/bench"
	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// TestClusterNodeKilled runs three heraldsvc processes on a 3-server NATS
// cluster and SIGKILLs the one holding both devices in the middle of a
// stream of notifications posted to the other two: the devices come back
// on the next node of their --service list, and every notification
// answered Received is delivered once, none twice.
func TestClusterNodeKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds heraldsvc and starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	bin := crashBuild(t, "heraldsvc")
	dir := t.TempDir()
	var nodes []*crashProc
	var urls []string
	for i := range 3 {
		addr := crashFreeAddr(t)
		logPath := filepath.Join(dir, fmt.Sprintf("node-%d.log", i))
		crashDumpLogs(t, logPath)
		nodes = append(nodes, crashStart(t, logPath, bin, "serve", "--listen", addr, "--store", nc.URLs(),
			"--store-replicas", "3", "--log-level", "debug", "--daily-quota", "-1", "--channel-rate", "-1", "--sender-rate", "-1"))
		urls = append(urls, "http://"+addr)
	}
	// Listening is not ready: a node answers 503 until its store is set
	// up, and a device would move on to its next URL.
	for _, u := range urls {
		testenv.Eventually(t, crashWait, u+" ready", func() bool {
			resp, err := http.Get(u + server.ReadyPath)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}

	// Both devices on node 0 (the first of their URLs); its backoff
	// bound is short so the test is quick, the jitter is the link's own.
	const backoffMax = 500 * time.Millisecond
	type dev struct {
		d      *testenv.Daemon
		uri    string
		ledger *crashLedger
	}
	var devs []dev
	for i := range 2 {
		d := testenv.StartDaemon(t, daemon.Config{Service: strings.Join(urls, ","),
			Link: channel.Config{BackoffMin: 20 * time.Millisecond, BackoffMax: backoffMax}})
		yes := true
		ch, err := d.Client.Open(ctxFor(t, 30*time.Second), "killapp", app.OpenRequest{Toast: &yes})
		if err != nil {
			t.Fatalf("device %d: %v", i, err)
		}
		l := newCrashLedger()
		crashListen(t, d.Client, "killapp", l)
		devs = append(devs, dev{d, ch.URI, l})
	}
	connected := func(url string) float64 {
		m, err := bench.ScrapeService(context.Background(), url)
		if err != nil {
			t.Fatalf("metrics of %s: %v", url, err)
		}
		return m[bench.MetricConnected]
	}
	if n := connected(urls[0]); n != 2 {
		t.Fatalf("%v devices on node 0, want both", n)
	}
	// Posts go to nodes 1 and 2: the one killed holds the devices only.
	target := func(uri string, i int) string {
		return urls[1+i%2] + uri[strings.Index(uri, server.ThrottledPath):]
	}

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	client := &http.Client{Timeout: 10 * time.Second}
	const total, senders = 200, 8
	killAt := 20 + rng.IntN(total/2)
	var next, answered atomic.Int64
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i > total {
					return
				}
				d := devs[i%len(devs)]
				id := fmt.Sprintf("n-%03d", i)
				uri := target(d.uri, i)
				if i%2 == 0 {
					d.ledger.record(id, crashPost(client, uri, mpns.KindRaw, id, []byte(id)))
				} else {
					d.ledger.record(id, crashPost(client, uri, mpns.KindToast, id, (&mpns.Toast{Text1: id}).XML()))
				}
				answered.Add(1)
			}
		}()
	}
	testenv.Eventually(t, crashWait, "stream under way", func() bool { return answered.Load() >= int64(killAt) })
	killed := time.Now()
	nodes[0].kill()
	t.Logf("node 0 killed after %d answers", killAt)
	wg.Wait()

	// A last toast to each device: delivery is in sequence order, so once
	// it is in, anything resent would have come before it.
	sentinels := make([]string, len(devs))
	for i, d := range devs {
		sentinels[i] = crashSentinel(t, client, target(d.uri, i))
	}
	for i, d := range devs {
		testenv.Eventually(t, crashWait, "every Received notification delivered", func() bool {
			toasts := crashCollectToasts(t, d.d.Client, "killapp")
			return toasts[sentinels[i]] == 1 && len(d.ledger.missingAfter(toasts)) == 0
		})
		t.Logf("device %d: everything in %v after the kill", i, time.Since(killed).Round(time.Millisecond))
		d.ledger.deliverAllBut(t, crashCollectToasts(t, d.d.Client, "killapp"))
		d.ledger.check(t, fmt.Sprintf("device %d", i))
	}
	if n := connected(urls[1]) + connected(urls[2]); n != 2 {
		t.Fatalf("%v devices on nodes 1 and 2 after the kill, want both", n)
	}
	// Each device is on a surviving node now: a status call through
	// either answers Connected.
	for i, d := range devs {
		r := post(t, target(d.uri, i), mpnsRequest{body: []byte("status")})
		if !r.received() {
			t.Fatalf("device %d after the kill: %d %s %s, want 200 Received Connected", i, r.status, r.notification, r.device)
		}
	}
}
