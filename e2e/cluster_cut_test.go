package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/natsstore"
)

// cutWait bounds each wait of the cut-off test: a failsafe, not what it
// measures (the figures are logged).
const cutWait = 60 * time.Second

// A node cut off from every NATS server by a network that drops its
// packets (a proxy that holds them) stops answering Received and hands
// its devices over: they are served by another node within the node's
// detection bound plus their retry delay. Every notification answered
// Received, before, during or after the cut, is shown once, none twice,
// also once the cut heals.
func TestClusterNodeCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	a := clusterNode(t, nc, "node-a")

	// Node B reaches each NATS server only through its own proxy, and
	// only through them (not the servers they announce).
	var proxies []*natstest.Proxy
	var urls []string
	for _, s := range nc.Servers {
		p := natstest.NewProxy(t, strings.TrimPrefix(s.URL(), "nats://"))
		proxies = append(proxies, p)
		urls = append(urls, p.URL())
	}
	log := testenv.Logger(t).With("part", "node-b")
	st, err := natsstore.Open(context.Background(), natsstore.Options{URLs: strings.Join(urls, ","), Replicas: 3, Logger: log,
		NATS: []nats.Option{nats.IgnoreDiscoveredServers()}})
	if err != nil {
		t.Fatal(err)
	}
	const retrySpread = 2 * time.Second
	b := testenv.Service(t, "", server.ServeConfig{Store: st, Server: server.Config{Logger: log, Presence: st, Quota: st,
		RetrySpread: retrySpread, Limits: server.Limits{DailyQuota: -1, ChannelRate: -1, SenderRate: -1, ShedFor: 500 * time.Millisecond}}})

	d := testenv.StartDaemon(t, daemon.Config{Service: b.URL() + "," + a.URL(),
		Link: channel.Config{BackoffMin: 20 * time.Millisecond, BackoffMax: 500 * time.Millisecond}})
	yes := true
	ch, err := d.Client.Open(ctxFor(t, 30*time.Second), "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	want, maybe := map[string]bool{}, map[string]bool{}
	mustReceive(t, on(b, ch.URI), mpnsRequest{target: "toast", class: "2", messageID: "before", body: toastXML("cluster", "before")})
	want["before"] = true
	waitToastsOnce(t, d.Client, want, nil)

	for _, p := range proxies {
		p.Stall()
		t.Cleanup(p.Heal) // a failure must not leave the node's close waiting on the cut
	}
	cut := time.Now()
	// Posted to the node still connected: shown once the device is on it.
	mustReceive(t, on(a, ch.URI), mpnsRequest{target: "toast", class: "2", messageID: "during", body: toastXML("cluster", "during")})
	want["during"] = true

	// The cut node answers 503 from the moment it knows, never Received
	// for what it could not store; anything it did answer Received must
	// be shown.
	var refusedAfter time.Duration
	for i := 0; refusedAfter == 0; i++ {
		if time.Since(cut) > cutWait {
			t.Fatal("the cut-off node never refused a sender")
		}
		id := fmt.Sprintf("to-cut-%d", i)
		r := toastTo(t, on(b, ch.URI), id)
		switch {
		case r.status == http.StatusOK && r.notification == "Received":
			want[id] = true
		case r.status == http.StatusServiceUnavailable:
			// Its publish may still reach NATS once the cut heals.
			maybe[id] = true
			refusedAfter = time.Since(cut)
		default:
			t.Fatalf("POST to the cut-off node: %d %s", r.status, r.notification)
		}
	}
	testenv.Eventually(t, cutWait, "the notification posted to the other node shown", func() bool {
		got, err := d.Client.Toasts(context.Background(), "demo")
		if err != nil {
			return false
		}
		for _, ts := range got {
			if ts.MessageID == "during" {
				return true
			}
		}
		return false
	})
	t.Logf("cut at 0: the cut-off node refused senders after %v; the device was served by the other node after %v",
		refusedAfter.Round(100*time.Millisecond), time.Since(cut).Round(100*time.Millisecond))

	for _, p := range proxies {
		p.Heal()
	}
	testenv.Eventually(t, cutWait, "the healed node ready", func() bool { return b.Ready() == nil })
	// The device stays on the other node; the healed one may take a
	// moment to see it there again, and answer TempDisconnected.
	// Calls the cut held finish late as it heals, and may shed senders
	// for a moment (ShedFor): each toast is sent until one is Received.
	for i := range 3 {
		receivedAgain(t, on(b, ch.URI), fmt.Sprintf("after-%d", i), cutWait, want, maybe)
	}
	waitToastsOnce(t, d.Client, want, maybe)
}
