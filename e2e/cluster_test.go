package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/natsstore"
	"github.com/heraldpush/herald/wire"
)

// clusterNode starts a heraldsvc node on its own connection to the NATS
// cluster, all nodes sharing one store.
func clusterNode(t *testing.T, nc *natstest.Cluster, name string) *server.Service {
	t.Helper()
	return clusterNodeWith(t, nc, name, server.Limits{DailyQuota: -1})
}

func clusterNodeWith(t *testing.T, nc *natstest.Cluster, name string, lim server.Limits) *server.Service {
	t.Helper()
	return clusterNodeStore(t, nc, name, lim, natsstore.Options{})
}

// clusterNodeStore is clusterNodeWith, its store opened with opts (the
// cluster's URLs, R3 and the node's logger filled in).
func clusterNodeStore(t *testing.T, nc *natstest.Cluster, name string, lim server.Limits, opts natsstore.Options) *server.Service {
	t.Helper()
	log := testenv.Logger(t).With("part", name)
	opts.URLs, opts.Replicas, opts.Logger = nc.URLs(), 3, log
	st, err := natsstore.Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("%s: opening the store: %v", name, err)
	}
	// A failover makes store calls slow for a moment, and the node sheds
	// load; briefly here, so the test sees it recover.
	lim.ChannelRate, lim.SenderRate, lim.ShedFor = -1, -1, 500*time.Millisecond
	return testenv.Service(t, "", server.ServeConfig{Store: st, Server: server.Config{Logger: log, Presence: st, Quota: st,
		Limits: lim}})
}

// on rewrites a channel URI to reach another node: every node answers
// every channel's URI.
func on(svc *server.Service, uri string) string {
	i := strings.Index(uri, server.ThrottledPath)
	return svc.URL() + uri[i:]
}

// allShown reports whether every id in want is among toasts.
func allShown(toasts []app.Toast, want map[string]bool) bool {
	shown := make(map[string]bool, len(toasts))
	for _, ts := range toasts {
		shown[ts.MessageID] = true
	}
	for id := range want {
		if !shown[id] {
			return false
		}
	}
	return true
}

// receivedAgain posts toasts under fresh ids prefix-0, prefix-1, … until
// one is answered Received, within wait, and adds that id to want and the
// ids answered 503 to maybe.
func receivedAgain(t *testing.T, uri, prefix string, wait time.Duration, want, maybe map[string]bool) {
	t.Helper()
	n := 0
	testenv.Eventually(t, wait, "Received for "+prefix, func() bool {
		id := fmt.Sprintf("%s-%d", prefix, n)
		n++
		r := toastTo(t, uri, id)
		switch {
		case r.status == http.StatusOK && r.notification == "Received":
			want[id] = true
			return true
		case r.status == http.StatusServiceUnavailable:
			maybe[id] = true
		default:
			t.Fatalf("POST %s: %d %s (%q)", id, r.status, r.notification, r.body)
		}
		return false
	})
}

func toastTo(t testing.TB, uri, msgID string) mpnsResponse {
	return post(t, uri, mpnsRequest{target: "toast", class: "2", messageID: msgID, body: toastXML("cluster", msgID)})
}

// waitToastsOnce waits until the device has recorded want toasts and checks
// that each message id came once. An id in maybe was answered 503: a
// publish whose answer was lost to a fault may have been stored all the
// same (the sender retries it), so it may be shown, but never twice.
func waitToastsOnce(t *testing.T, c *app.Client, want, maybe map[string]bool) {
	t.Helper()
	var toasts []app.Toast
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, err := c.Toasts(context.Background(), "demo")
		if err == nil {
			toasts = got
		}
		if allShown(toasts, want) || time.Now().After(deadline) {
			break
		}
	}
	seen := map[string]int{}
	for _, ts := range toasts {
		seen[ts.MessageID]++
	}
	for id, n := range seen {
		if n != 1 || !want[id] && !maybe[id] {
			t.Errorf("toast %s shown %d times (answered Received: %v, 503: %v)", id, n, want[id], maybe[id])
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
		// Received/Active/Connected, as a single node would answer.
		id := fmt.Sprintf("via-a-%d", i)
		mustReceive(t, on(a, ch.URI), mpnsRequest{target: "toast", class: "2", messageID: id, body: toastXML("cluster", id)})
		want[id] = true
	}
	mustReceive(t, ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "via-b", body: toastXML("cluster", "via-b")})
	want["via-b"] = true
	waitToastsOnce(t, d.Client, want, nil)
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
	want, maybe := map[string]bool{}, map[string]bool{}
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
					maybe[id] = true
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
	receivedAgain(t, on(a, ch.URI), "after", 30*time.Second, want, maybe)
	waitToastsOnce(t, d.Client, want, maybe)
}

// wsDevice is a device speaking the wire protocol by hand, so the test
// chooses which node each of its connections goes to.
type wsDevice struct {
	id, secret string
	// lastSeq is what the next hello says the device applied.
	lastSeq uint64
}

func (d *wsDevice) dial(t *testing.T, svc *server.Service) *websocket.Conn {
	t.Helper()
	conn, data, err := d.hello(t, svc)
	if err != nil {
		t.Fatal(err)
	}
	f, err := wire.DecodeService(data)
	w, ok := f.(*wire.Welcome)
	if err != nil || !ok {
		t.Fatalf("hello answered with %s", data)
	}
	if d.id == "" {
		d.id, d.secret = w.ID, w.Secret
	}
	return conn
}

// hello connects, says hello and returns the service's answer, or the
// error reading it (a close).
func (d *wsDevice) hello(t *testing.T, svc *server.Service) (*websocket.Conn, []byte, error) {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(svc.URL(), "http")+server.DevicePath, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := wire.DecodeService(data)
	challenge, ok := cf.(*wire.Challenge)
	if err != nil || !ok {
		t.Fatalf("first frame %s, want a challenge", data)
	}
	hello := wire.Hello{Type: wire.TypeHello, Version: wire.Version, LastSeq: d.lastSeq}
	if d.id != "" {
		hello.ID, hello.Nonce = d.id, wire.NewNonce()
		hello.Proof = wire.HelloProof(wire.DeviceKey(d.secret), challenge.Nonce, hello.Nonce, d.id)
	}
	b, _ := wire.Encode(hello)
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	_, data, err = conn.ReadMessage()
	return conn, data, err
}

// open registers a channel for app over conn and returns its URI.
func (d *wsDevice) open(t *testing.T, conn *websocket.Conn, app string) string {
	t.Helper()
	b, _ := wire.Encode(wire.Register{Type: wire.TypeRegister, ReqID: 1, App: app, Channel: "default"})
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		t.Fatal(err)
	}
	_, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	f, err := wire.DecodeService(data)
	r, ok := f.(*wire.Registered)
	if err != nil || !ok || r.Code != "" {
		t.Fatalf("register answered with %s", data)
	}
	return r.URI
}

// A device that connects to node C while node B still holds it takes
// over cluster-wide: B closes its connection with 4004. Senders on any
// node see it Connected while it is on one, TempDisconnected when on none.
func TestClusterTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	a, b, c := clusterNode(t, nc, "node-a"), clusterNode(t, nc, "node-b"), clusterNode(t, nc, "node-c")
	d := &wsDevice{}
	onB := d.dial(t, b)
	uri := d.open(t, onB, "raw-app")
	if r := post(t, on(a, uri), mpnsRequest{body: []byte("on B")}); r.status != http.StatusOK || r.device != "Connected" {
		t.Fatalf("device on B, POST to A: %d %s/%s", r.status, r.notification, r.device)
	}

	onC := d.dial(t, c)
	onB.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := onB.ReadMessage()
		if err == nil {
			continue // the notification sent while on B
		}
		if !websocket.IsCloseError(err, wire.CloseReplaced) {
			t.Fatalf("B's connection ended with %v, want close %d", err, wire.CloseReplaced)
		}
		break
	}
	testenv.Eventually(t, 10*time.Second, "B lets go of the device", func() bool { return !b.Connected(d.id) })
	for _, node := range []*server.Service{a, b} {
		if r := post(t, on(node, uri), mpnsRequest{body: []byte("on C")}); r.status != http.StatusOK || r.device != "Connected" {
			t.Fatalf("device on C, POST to %s: %d %s/%s", node.URL(), r.status, r.notification, r.device)
		}
	}
	if !c.Connected(d.id) {
		t.Fatal("C lost the device")
	}

	onC.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	onC.Close()
	testenv.Eventually(t, 10*time.Second, "C notices the device left", func() bool { return !c.Connected(d.id) })
	if r := post(t, on(c, uri), mpnsRequest{body: []byte("away")}); r.status != http.StatusOK || r.device != "TempDisconnected" {
		t.Fatalf("device away, POST to C: %d %s/%s", r.status, r.notification, r.device)
	}
	// The other nodes learn of the departure through their watched copy
	// of presence, a moment behind C (docs/cluster.md, watched copies):
	// until then a POST is judged as it would have been a moment before.
	for _, node := range []*server.Service{a, b} {
		testenv.Eventually(t, 10*time.Second, "TempDisconnected from "+node.URL(), func() bool {
			r := post(t, on(node, uri), mpnsRequest{body: []byte("away")})
			if r.status != http.StatusOK {
				t.Fatalf("device away, POST to %s: %d %s/%s", node.URL(), r.status, r.notification, r.device)
			}
			return r.device == "TempDisconnected"
		})
	}
}

// A channel's daily quota holds across nodes: what one node took counts on
// the other.
func TestClusterDailyQuota(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	lim := server.Limits{DailyQuota: 4}
	a, b := clusterNodeWith(t, nc, "node-a", lim), clusterNodeWith(t, nc, "node-b", lim)
	d := &wsDevice{}
	uri := d.open(t, d.dial(t, a), "raw-app")
	for i, node := range []*server.Service{a, b, a, b} {
		if r := post(t, on(node, uri), mpnsRequest{body: []byte("raw")}); r.status != http.StatusOK {
			t.Fatalf("notification %d: %d %s (%q)", i+1, r.status, r.notification, r.body)
		}
	}
	for _, node := range []*server.Service{a, b} {
		if r := post(t, on(node, uri), mpnsRequest{body: []byte("raw")}); r.status != http.StatusNotAcceptable {
			t.Fatalf("past the quota on %s: %d %s (%q), want 406", node.URL(), r.status, r.notification, r.body)
		}
	}
}

// A node goes away in the middle of a stream of notifications: its device
// moves to the next node of its --service list, and every notification
// answered Received is shown once.
func TestClusterNodeDies(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	a, b, c := clusterNode(t, nc, "node-a"), clusterNode(t, nc, "node-b"), clusterNode(t, nc, "node-c")
	d := testenv.StartDaemon(t, daemon.Config{Service: b.URL() + "," + c.URL()})
	yes := true
	ch, err := d.Client.Open(ctxFor(t, 10*time.Second), "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	send := func(id string) {
		r := toastTo(t, on(a, ch.URI), id)
		if r.status != http.StatusOK || r.notification != "Received" {
			t.Fatalf("POST %s: %d %s (%q)", id, r.status, r.notification, r.body)
		}
		want[id] = true
	}
	for i := range 10 {
		send(fmt.Sprintf("before-%d", i))
	}
	if b.ConnectedCount() != 1 {
		t.Fatal("the device is not on node B")
	}
	stopped := time.Now()
	b.Close()
	for i := range 10 {
		send(fmt.Sprintf("after-%d", i))
	}
	testenv.Eventually(t, 30*time.Second, "the device on node C", func() bool { return c.ConnectedCount() == 1 })
	t.Logf("device back on node C %v after node B stopped", time.Since(stopped).Round(time.Millisecond))
	waitToastsOnce(t, d.Client, want, nil)
}

// On a cluster a hello's last_seq is bounded by the highest number the
// queue stream has given any device: above it is closed 4002; a number
// given to another device is taken, and skips only the claimant's own
// queue, never the other device's.
func TestClusterLastSeqClaims(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	a, b := clusterNode(t, nc, "node-a"), clusterNode(t, nc, "node-b")
	victim, attacker := &wsDevice{}, &wsDevice{}
	vconn := victim.dial(t, a)
	vuri := victim.open(t, vconn, "raw-app")
	vconn.Close()
	testenv.Eventually(t, 10*time.Second, "the victim away", func() bool { return !a.Connected(victim.id) })
	aconn := attacker.dial(t, b)
	attacker.open(t, aconn, "raw-app")
	aconn.Close()
	testenv.Eventually(t, 10*time.Second, "the attacker away", func() bool { return !b.Connected(attacker.id) })

	for i := range 3 {
		if r := post(t, on(b, vuri), mpnsRequest{body: []byte(fmt.Sprint("v", i))}); r.status != http.StatusOK || r.notification != "Received" {
			t.Fatalf("POST %d to the victim: %d %s", i, r.status, r.notification)
		}
	}
	// The victim's numbers, as the victim will be given them.
	vconn = victim.dial(t, a)
	seqs := notified(t, vconn, 3)
	vconn.Close()
	testenv.Eventually(t, 10*time.Second, "the victim away again", func() bool { return !a.Connected(victim.id) })

	// Far above anything given: refused on either node.
	for _, node := range []*server.Service{a, b} {
		attacker.lastSeq = seqs[2] + 1_000_000
		_, data, err := attacker.hello(t, node)
		if !websocket.IsCloseError(err, wire.CloseProtocol) {
			t.Fatalf("last_seq %d on %s: answered %s, %v; want close %d", attacker.lastSeq, node.URL(), data, err, wire.CloseProtocol)
		}
	}
	// The victim's own number: taken.
	attacker.lastSeq = seqs[2]
	aconn = attacker.dial(t, b)
	aconn.Close()
	testenv.Eventually(t, 10*time.Second, "the attacker away again", func() bool { return !b.Connected(attacker.id) })

	// The victim, reconnecting as if it had applied nothing, still gets
	// all three.
	victim.lastSeq = 0
	vconn = victim.dial(t, b)
	if again := notified(t, vconn, 3); !slices.Equal(again, seqs) {
		t.Fatalf("the victim was sent %v after the claim, want %v", again, seqs)
	}
}

// notified reads conn until n notifications came and returns their
// numbers.
func notified(t *testing.T, conn *websocket.Conn, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(seqs) < n {
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %d notifications (got %v): %v", n, seqs, err)
		}
		if f, err := wire.DecodeService(data); err == nil {
			if batch, ok := f.(*wire.Notify); ok {
				for _, x := range batch.Notifications {
					seqs = append(seqs, x.Seq)
				}
			}
		}
	}
	return seqs
}
