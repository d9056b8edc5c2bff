package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/natsstore"
)

// readyWait bounds how long a node may take to become ready: a fresh
// cluster's election, then every store's backoff, on a loaded machine. A
// failsafe, not a measurement.
const readyWait = 3 * time.Minute

// startingNode starts a node as heraldsvc does: listening at once, its
// store setting itself up in the background.
func startingNode(t *testing.T, nc *natstest.Cluster, name string) *server.Service {
	t.Helper()
	log := testenv.Logger(t).With("part", name)
	st, err := natsstore.Start(natsstore.Options{URLs: nc.URLs(), Replicas: 3, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return testenv.Service(t, "", server.ServeConfig{Store: st, Server: server.Config{Logger: log, Presence: st, Quota: st,
		Limits: server.Limits{DailyQuota: -1, ChannelRate: -1, SenderRate: -1, ShedFor: 500 * time.Millisecond}}})
}

func readiness(t *testing.T, svc *server.Service) (int, server.Probe) {
	t.Helper()
	resp, err := http.Get(svc.URL() + server.ReadyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p server.Probe
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, p
}

func waitReady(t *testing.T, nodes ...*server.Service) {
	t.Helper()
	for _, svc := range nodes {
		testenv.Eventually(t, readyWait, svc.URL()+" ready", func() bool {
			code, p := readiness(t, svc)
			return code == http.StatusOK && p.Ready
		})
	}
}

// Three nodes started at the same instant as a fresh three-server NATS
// cluster (systemd at boot, a deployment's replicas) all become ready,
// and a notification posted to one reaches a device on another.
func TestClusterNodesStartTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.NewCluster(t, 3)
	nc.Launch(t)
	a, b, c := startingNode(t, nc, "node-a"), startingNode(t, nc, "node-b"), startingNode(t, nc, "node-c")
	waitReady(t, a, b, c)
	d := testenv.StartDaemon(t, daemon.Config{Service: c.URL()})
	yes := true
	ch, err := d.Client.Open(ctxFor(t, 30*time.Second), "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	// The channel was bound on node c a moment ago; another node may
	// read a replica of the bucket a moment behind it and answer
	// Suppressed (docs/cluster.md), so each node is tried until it
	// answers Received.
	want := map[string]bool{}
	for _, node := range []*server.Service{a, b} {
		n := 0
		testenv.Eventually(t, 30*time.Second, node.URL()+" takes the channel", func() bool {
			n++
			id := fmt.Sprintf("via-%s-%d", node.Addr(), n)
			r := toastTo(t, on(node, ch.URI), id)
			if r.status == http.StatusOK && r.notification == "Received" {
				want[id] = true
				return true
			}
			return false
		})
	}
	waitToastsOnce(t, d.Client, want, nil)
}

// A node started before its NATS servers listens at once, says it is not
// ready and what it waits for, refuses senders and devices with 503 and
// Retry-After, and serves once the servers come.
func TestClusterNodeBeforeNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.NewCluster(t, 3)
	svc := startingNode(t, nc, "node-a")
	code, p := readiness(t, svc)
	if code != http.StatusServiceUnavailable || p.Ready || p.Service != "heraldsvc" || !strings.Contains(p.WaitingFor, "NATS") {
		t.Fatalf("before NATS: /readyz %d %+v", code, p)
	}
	r := post(t, svc.URL()+server.ThrottledPath+"sometoken", mpnsRequest{target: "toast", class: "2", messageID: "m", body: toastXML("x", "m")})
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("POST before NATS: %d %q", r.status, r.body)
	}
	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(svc.URL(), "http")+server.DevicePath, nil)
	if !errors.Is(err, websocket.ErrBadHandshake) || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("device before NATS: %v %+v", err, resp)
	}

	nc.Launch(t)
	waitReady(t, svc)
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	yes := true
	ch, err := d.Client.Open(ctxFor(t, 30*time.Second), "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	mustReceive(t, ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "after", body: toastXML("cluster", "after")})
	waitToastsOnce(t, d.Client, map[string]bool{"after": true}, nil)
}

// Every NATS server restarted under running nodes: the nodes say they are
// not ready while NATS is away, become ready again when it is back, and
// a device that stayed connected to one node gets what is posted to the
// other, once.
func TestClusterAllNATSRestarted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	a, b := startingNode(t, nc, "node-a"), startingNode(t, nc, "node-b")
	waitReady(t, a, b)
	d := testenv.StartDaemon(t, daemon.Config{Service: b.URL()})
	yes := true
	ch, err := d.Client.Open(ctxFor(t, 30*time.Second), "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"before": true}
	mustReceive(t, on(a, ch.URI), mpnsRequest{target: "toast", class: "2", messageID: "before", body: toastXML("cluster", "before")})

	for _, s := range nc.Servers {
		s.Stop()
	}
	for _, svc := range []*server.Service{a, b} {
		testenv.Eventually(t, readyWait, svc.URL()+" not ready without NATS", func() bool {
			code, _ := readiness(t, svc)
			return code == http.StatusServiceUnavailable
		})
	}
	for _, s := range nc.Servers {
		s.Restart(t)
	}
	waitReady(t, a, b)
	// The streams elect their leaders after the servers take clients:
	// until then a sender is told 503, never Received for nothing.
	maybe := map[string]bool{}
	receivedAgain(t, on(a, ch.URI), "after", readyWait, want, maybe)
	waitToastsOnce(t, d.Client, want, maybe)
}

// The heraldsvc binary with a NATS store that is not there listens at
// once, says on /readyz what it waits for, and stops at once on SIGTERM;
// with credentials NATS refuses it exits 1 saying so.
func TestBinaryNodeWaitsForNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	_, heraldsvc := buildBinaries(t, t.TempDir())
	env := childEnv()
	absent := "nats://" + freeLoopbackAddr(t)
	p := startProc(t, env, heraldsvc, "serve", "--listen", "127.0.0.1:0", "--store", absent)
	m := svcListening.FindStringSubmatch(p.readLine(t))
	if m == nil {
		t.Fatalf("heraldsvc did not say where it listens:\n%s", p.stderr)
	}
	resp, err := http.Get("http://" + m[1] + server.ReadyPath)
	if err != nil {
		t.Fatal(err)
	}
	var probe server.Probe
	json.NewDecoder(resp.Body).Decode(&probe)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || probe.Service != "heraldsvc" || !strings.Contains(probe.WaitingFor, "NATS") {
		t.Fatalf("/readyz while NATS is absent: %d %+v", resp.StatusCode, probe)
	}
	p.stop(t)
	if got := strings.Count(p.stderr.String(), "waiting for the store"); got != 1 {
		t.Errorf("logged what it waits for %d times, want once:\n%s", got, p.stderr)
	}

	ns := natstest.RunWithUser(t, "herald", "right")
	bad := startProc(t, env, heraldsvc, "serve", "--listen", "127.0.0.1:0", "--store", ns.URL(),
		"--nats-user", "herald", "--nats-password", "wrong")
	select {
	case <-bad.done:
	case <-time.After(readyWait): // a failsafe: NATS refuses at once
		t.Fatal("heraldsvc kept waiting with refused credentials")
	}
	if code := bad.cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(strings.ToLower(bad.stderr.String()), "authorization violation") {
		t.Fatalf("refused credentials: exit %d\n%s", code, bad.stderr)
	}
}
