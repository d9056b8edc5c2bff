package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/natsstore"
)

// The NATS server leading the queue's stream stops, the other two keep
// the quorum: senders posting steadily to two nodes meanwhile are
// answered Received or 503, never Received for something lost, and
// Received again once a new leader is elected. How long senders met 503
// is logged: a figure (docs/cluster.md), not a bound this test enforces.
func TestClusterStreamLeaderLost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	// Shedding as configured by default (ShedFor 10 s), which is what
	// turned a failover into 17 s of 503.
	node := func(name string) *server.Service {
		log := testenv.Logger(t).With("part", name)
		st, err := natsstore.Open(context.Background(), natsstore.Options{URLs: nc.URLs(), Replicas: 3, Logger: log})
		if err != nil {
			t.Fatalf("%s: opening the store: %v", name, err)
		}
		return testenv.Service(t, "", server.ServeConfig{Store: st, Server: server.Config{Logger: log, Presence: st, Quota: st,
			Limits: server.Limits{DailyQuota: -1, ChannelRate: -1, SenderRate: -1}}})
	}
	a, b := node("node-a"), node("node-b")
	d := testenv.StartDaemon(t, daemon.Config{Service: b.URL()})
	yes := true
	ch, err := d.Client.Open(ctxFor(t, 10*time.Second), "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}

	_, js := natstest.Connect(t, nc.URLs())
	info, err := js.Stream(ctxFor(t, 10*time.Second), "HERALD_QUEUE")
	if err != nil {
		t.Fatal(err)
	}
	leader := info.CachedInfo().Cluster.Leader
	var victim *natstest.Server
	for _, s := range nc.Servers {
		if s.Name() == leader {
			victim = s
		}
	}
	if victim == nil {
		t.Fatalf("no server named %q leads the stream", leader)
	}

	const senders, period, run = 4, 50 * time.Millisecond, 20 * time.Second
	var mu sync.Mutex
	want, maybe := map[string]bool{}, map[string]bool{}
	var first503, last503 time.Time
	refused := 0
	var wg sync.WaitGroup
	begin := time.Now()
	stopAt := begin.Add(run)
	killAt := begin.Add(2 * time.Second)
	var stopped time.Time
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(time.Until(killAt)) // the senders are running; not a synchronisation
		stopped = time.Now()
		victim.Stop()
	}()
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stopAt); i++ {
				id := fmt.Sprintf("s%d-%d", s, i)
				uri := on(a, ch.URI)
				if i%2 == 1 {
					uri = ch.URI
				}
				r := toastTo(t, uri, id)
				now := time.Now()
				mu.Lock()
				switch {
				case r.status == http.StatusOK && r.notification == "Received":
					want[id] = true
				case r.status == http.StatusServiceUnavailable:
					refused++
					maybe[id] = true
					if first503.IsZero() {
						first503 = now
					}
					last503 = now
				default:
					t.Errorf("POST %s: %d %s (%q)", id, r.status, r.notification, r.body)
				}
				mu.Unlock()
				time.Sleep(period)
			}
		}()
	}
	wg.Wait()
	window := time.Duration(0)
	if !first503.IsZero() {
		window = last503.Sub(first503)
	}
	t.Logf("stream leader %s stopped at %v: %d Received, %d answered 503, 503s from %v to %v after it (%v)",
		leader, stopped.Sub(begin).Round(100*time.Millisecond), len(want), refused,
		since(first503, stopped), since(last503, stopped), window.Round(100*time.Millisecond))
	// A new leader may still be being elected when the senders stop.
	receivedAgain(t, on(a, ch.URI), "after", 60*time.Second, want, maybe)
	waitToastsOnce(t, d.Client, want, maybe)
}

func since(t, from time.Time) time.Duration {
	if t.IsZero() {
		return 0
	}
	return t.Sub(from).Round(100 * time.Millisecond)
}
