package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
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

// clusterNode starts a heraldsvc node on its own connection to the NATS
// cluster, all nodes sharing one store.
func clusterNode(t *testing.T, nc *natstest.Cluster, name string) *server.Service {
	t.Helper()
	log := testenv.Logger(t).With("part", name)
	st, err := natsstore.Open(context.Background(), natsstore.Options{URLs: nc.URLs(), Replicas: 3, Logger: log})
	if err != nil {
		t.Fatalf("%s: opening the store: %v", name, err)
	}
	return testenv.Service(t, "", server.ServeConfig{Store: st, Server: server.Config{Logger: log,
		// A failover makes store calls slow for a moment, and the node
		// sheds load; briefly here, so the test sees it recover.
		Limits: server.Limits{DailyQuota: -1, ChannelRate: -1, SenderRate: -1, ShedFor: 500 * time.Millisecond}}})
}

// on rewrites a channel URI to reach another node: every node answers
// every channel's URI.
func on(svc *server.Service, uri string) string {
	i := strings.Index(uri, server.ThrottledPath)
	return svc.URL() + uri[i:]
}

func toastTo(t testing.TB, uri, msgID string) mpnsResponse {
	return post(t, uri, mpnsRequest{target: "toast", class: "2", messageID: msgID, body: toastXML("cluster", msgID)})
}

// waitToastsOnce waits until the device has recorded want toasts and checks
// that each message id came once.
func waitToastsOnce(t *testing.T, c *app.Client, want map[string]bool) {
	t.Helper()
	var toasts []app.Toast
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err := c.Toasts(context.Background(), "demo")
		if err == nil {
			toasts = got
		}
		if len(toasts) >= len(want) || time.Now().After(deadline) {
			break
		}
	}
	seen := map[string]int{}
	for _, ts := range toasts {
		seen[ts.MessageID]++
	}
	for id, n := range seen {
		if n != 1 || !want[id] {
			t.Errorf("toast %s shown %d times (answered Received: %v)", id, n, want[id])
		}
	}
	for id := range want {
		if seen[id] == 0 {
			t.Errorf("toast %s answered Received and never shown", id)
		}
	}
}

// A notification posted to node A for a device connected to node B reaches
// it: the nodes share the store, and B follows every commit.
func TestClusterPostToOtherNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	a, b := clusterNode(t, nc, "node-a"), clusterNode(t, nc, "node-b")
	d := testenv.StartDaemon(t, daemon.Config{Service: b.URL()})
	yes := true
	ch, err := d.Client.Open(ctxFor(t, 10*time.Second), "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := range 5 {
		id := fmt.Sprintf("via-a-%d", i)
		r := toastTo(t, on(a, ch.URI), id)
		if r.status != http.StatusOK || r.notification != "Received" || r.subscription != "Active" {
			t.Fatalf("POST to node A: %d %s/%s (%q)", r.status, r.notification, r.subscription, r.body)
		}
		want[id] = true
	}
	mustReceive(t, ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "via-b", body: toastXML("cluster", "via-b")})
	want["via-b"] = true
	waitToastsOnce(t, d.Client, want)
}

// One of three NATS servers stops in the middle of a burst: the stream
// and buckets are replicated three times, so the cluster keeps its quorum;
// every notification answered Received is shown once, and a sender whose
// request met the failover is told 503, never Received for something lost.
func TestClusterNATSServerDiesInBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	a, b := clusterNode(t, nc, "node-a"), clusterNode(t, nc, "node-b")
	d := testenv.StartDaemon(t, daemon.Config{Service: b.URL()})
	yes := true
	ch, err := d.Client.Open(ctxFor(t, 10*time.Second), "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	const senders, each = 4, 40
	var mu sync.Mutex
	want := map[string]bool{}
	refused := 0
	var wg sync.WaitGroup
	killed := make(chan struct{})
	var once sync.Once
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if s == 0 && i == each/4 {
					once.Do(func() {
						nc.Servers[1].Stop()
						close(killed)
					})
				}
				id := fmt.Sprintf("s%d-%d", s, i)
				uri := on(a, ch.URI)
				if i%2 == 1 {
					uri = ch.URI // node B too
				}
				r := toastTo(t, uri, id)
				mu.Lock()
				switch {
				case r.status == http.StatusOK && r.notification == "Received":
					want[id] = true
				case r.status == http.StatusServiceUnavailable:
					refused++
				default:
					t.Errorf("POST %s: %d %s (%q)", id, r.status, r.notification, r.body)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	<-killed
	t.Logf("%d Received, %d refused with 503 while a NATS server was down", len(want), refused)
	// With two of three servers the cluster has its quorum, and takes
	// notifications again once the failover is over.
	testenv.Eventually(t, 30*time.Second, "Received again after the failover", func() bool {
		r := toastTo(t, on(a, ch.URI), "after")
		if r.status == http.StatusOK && r.notification == "Received" {
			want["after"] = true
			return true
		}
		return false
	})
	waitToastsOnce(t, d.Client, want)
}
