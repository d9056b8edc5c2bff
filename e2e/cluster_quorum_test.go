package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/natsstore"
	"github.com/heraldpush/herald/wire"
)

// quorumWait bounds each wait of the quorum test: a failsafe for a
// loaded machine, never what the test measures.
const quorumWait = 90 * time.Second

// answers records what senders were answered, per notification id.
type answers struct {
	mu       sync.Mutex
	accepted map[string]bool // answered Received (MPNS) or 201 (Web Push)
	refused  map[string]bool // answered 503 with a Retry-After
}

func (a *answers) record(t *testing.T, what, id string, status int, ok bool, retryAfter string) bool {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case ok:
		a.accepted[id] = true
		return true
	case status == http.StatusServiceUnavailable && retryAfter != "":
		a.refused[id] = true
	default:
		t.Errorf("%s %s: answered %d (Retry-After %q), want success or 503 with a Retry-After", what, id, status, retryAfter)
	}
	return false
}

func (a *answers) counts() (accepted, refused int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.accepted), len(a.refused)
}

// postWebPush sends one Web Push message whose body is id and reports the
// status and Retry-After.
func postWebPush(t *testing.T, uri, id string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, uri, bytes.NewReader([]byte(id)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("TTL", "600")
	req.Header.Set("Content-Encoding", "aes128gcm")
	res, err := senderClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", id, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, res.Header.Get("Retry-After")
}

// With two of the three NATS servers down the stream and buckets have no
// quorum: every sender, MPNS or Web Push, on either node, is answered 503
// with a Retry-After, or (in the moment before the loss tells) accepted
// for a notification that is then delivered, never accepted for one later
// lost. Once the servers are back both nodes accept again, the connected
// device is shown every toast answered Received and the away device
// finds every message answered 201 queued, each once; a notification
// answered 503 may have been stored all the same (a sender retries it
// under its own id), but never twice.
func TestClusterQuorumLost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	node := func(name string) *server.Service {
		log := testenv.Logger(t).With("part", name)
		st, err := natsstore.Open(context.Background(), natsstore.Options{URLs: nc.URLs(), Replicas: 3, Logger: log})
		if err != nil {
			t.Fatalf("%s: opening the store: %v", name, err)
		}
		// Devices told to come back later do so within a second, and
		// shedding lasts a moment, so the test sees the recovery soon.
		return testenv.Service(t, "", server.ServeConfig{Store: st, Server: server.Config{Logger: log, Presence: st, Quota: st,
			RetrySpread: time.Second,
			Limits:      server.Limits{DailyQuota: -1, ChannelRate: -1, SenderRate: -1, ShedFor: 500 * time.Millisecond}}})
	}
	a, b := node("node-a"), node("node-b")
	nodes := []*server.Service{a, b}

	// An MPNS device connected to node B throughout (the herald daemon,
	// which reconnects whenever it is told to), and a Web Push device
	// away throughout, whose queue is read once the servers are back.
	d := testenv.StartDaemon(t, daemon.Config{Service: b.URL(),
		Link: channel.Config{BackoffMin: 20 * time.Millisecond, BackoffMax: 500 * time.Millisecond}})
	yes := true
	ch, err := d.Client.Open(ctxFor(t, 30*time.Second), "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	wp := &wsDevice{}
	conn := wp.dial(t, a)
	wpURI := wp.open(t, conn, "raw-app")
	conn.Close()
	testenv.Eventually(t, quorumWait, "the Web Push device away", func() bool { return !a.Connected(wp.id) })

	toasts := &answers{accepted: map[string]bool{}, refused: map[string]bool{}}
	pushes := &answers{accepted: map[string]bool{}, refused: map[string]bool{}}
	sendToast := func(svc *server.Service, id string) bool {
		r := toastTo(t, on(svc, ch.URI), id)
		return toasts.record(t, "MPNS toast", id, r.status, r.status == http.StatusOK && r.notification == "Received", r.retryAfter)
	}
	sendPush := func(svc *server.Service, id string) bool {
		status, retryAfter := postWebPush(t, on(svc, wpURI), id)
		return pushes.record(t, "Web Push message", id, status, status == http.StatusCreated, retryAfter)
	}
	for _, svc := range nodes {
		if !sendToast(svc, "before-"+svc.URL()) || !sendPush(svc, "before-"+svc.URL()) {
			t.Fatal("refused before any fault")
		}
	}

	// The stream's leader is left alone: it must stop committing, not
	// acknowledge what it can no longer replicate.
	leader := queueLeader(t, nc)
	var stopped []*natstest.Server
	for _, s := range nc.Servers {
		if s.Name() != leader {
			s.Stop()
			stopped = append(stopped, s)
		}
	}
	down := time.Now()

	// Senders of each kind on each node post until each has been told
	// 503 twice for a request sent while both nodes were connected to
	// the server left (they reconnect to it at once): the loss was met
	// where a publish waits for a quorum that never comes, not only
	// while the nodes were reconnecting.
	const refusalsEach = 2
	connected := func() bool { return a.Ready() == nil && b.Ready() == nil }
	var wg sync.WaitGroup
	for i, svc := range nodes {
		for kind, send := range map[string]func(*server.Service, string) bool{"toast": sendToast, "push": sendPush} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n, refused := 0, 0; refused < refusalsEach; n++ {
					if time.Since(down) > quorumWait {
						t.Errorf("%s sender on node %d: refused %d times while connected in %v", kind, i, refused, quorumWait)
						return
					}
					wasConnected := connected()
					if !send(svc, fmt.Sprintf("down-%s-%d-%d", kind, i, n)) && wasConnected {
						refused++
					}
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ta, tr := toasts.counts()
	pa, pr := pushes.counts()
	t.Logf("two of three NATS servers down for %v: toasts %d accepted (before and during) and %d refused, Web Push %d and %d",
		time.Since(down).Round(100*time.Millisecond), ta, tr, pa, pr)

	for _, s := range stopped {
		s.Restart(t)
	}
	back := time.Now()
	// untilAccepted sends under fresh ids until one is accepted and
	// returns that id: for some seconds after the servers' return a
	// bucket may still be electing its leader, or a node shedding load
	// after a call the catch-up slowed, and a sender is rightly told 503
	// with a Retry-After (docs/cluster.md).
	untilAccepted := func(kind, prefix string, send func(string) bool) string {
		for i := 0; ; i++ {
			if time.Since(back) > quorumWait {
				t.Fatalf("no %s accepted within %v of the servers' return (%s)", kind, quorumWait, prefix)
			}
			if id := fmt.Sprintf("%s-%d", prefix, i); send(id) {
				if i > 0 {
					t.Logf("%s %s accepted after %d refusals", kind, id, i)
				}
				return id
			}
		}
	}
	for _, svc := range nodes {
		untilAccepted("toast", "back-"+svc.URL(), func(id string) bool { return sendToast(svc, id) })
		untilAccepted("Web Push message", "back-"+svc.URL(), func(id string) bool { return sendPush(svc, id) })
	}
	t.Logf("both nodes accepted both kinds again %v after the servers' restart", time.Since(back).Round(100*time.Millisecond))
	if t.Failed() {
		t.FailNow()
	}

	// The last of each kind is a marker: the device's queue is in order,
	// so whatever was stored before it has come by the time it does.
	toastEnd := untilAccepted("toast", "end", func(id string) bool { return sendToast(a, id) })
	pushEnd := untilAccepted("Web Push message", "end", func(id string) bool { return sendPush(a, id) })
	checkToasts(t, d.Client, toasts, toastEnd)
	checkPushes(t, wp, b, pushes, pushEnd)
}

// queueLeader is the name of the NATS server leading the queue's stream.
func queueLeader(t *testing.T, nc *natstest.Cluster) string {
	t.Helper()
	conn, js := natstest.Connect(t, nc.URLs())
	defer conn.Close()
	info, err := js.Stream(ctxFor(t, 10*time.Second), "HERALD_QUEUE")
	if err != nil {
		t.Fatal(err)
	}
	return info.CachedInfo().Cluster.Leader
}

// checkToasts waits for the marker toast end and checks that every toast
// answered Received was shown once and none twice.
func checkToasts(t *testing.T, c *app.Client, ans *answers, end string) {
	t.Helper()
	seen := map[string]int{}
	testenv.Eventually(t, quorumWait, "the marker toast shown", func() bool {
		got, err := c.Toasts(context.Background(), "demo")
		if err != nil {
			return false
		}
		clear(seen)
		for _, ts := range got {
			seen[ts.MessageID]++
		}
		return seen[end] > 0
	})
	checkOnce(t, "toast", seen, ans)
}

// checkPushes connects the away Web Push device to svc, reads its queue up
// to the marker end and checks that every message answered 201 came once
// and none twice.
func checkPushes(t *testing.T, d *wsDevice, svc *server.Service, ans *answers, end string) {
	t.Helper()
	conn := d.dial(t, svc)
	defer conn.Close()
	seen := map[string]int{}
	conn.SetReadDeadline(time.Now().Add(quorumWait))
	for seen[end] == 0 {
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for the marker message (after %d): %v", len(seen), err)
		}
		f, err := wire.DecodeService(data)
		batch, ok := f.(*wire.Notify)
		if err != nil || !ok {
			continue
		}
		for _, n := range batch.Notifications {
			if n.Kind == string(mpns.KindWebPush) {
				seen[string(n.Body)]++
			}
		}
	}
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	checkOnce(t, "Web Push message", seen, ans)
}

func checkOnce(t *testing.T, what string, seen map[string]int, ans *answers) {
	t.Helper()
	ans.mu.Lock()
	defer ans.mu.Unlock()
	var storedAfter503 []string
	for id, n := range seen {
		switch {
		case n > 1:
			t.Errorf("%s %s delivered %d times", what, id, n)
		case ans.refused[id]:
			storedAfter503 = append(storedAfter503, id)
		case !ans.accepted[id]:
			t.Errorf("%s %s delivered, and was never sent", what, id)
		}
	}
	lost := 0
	for id := range ans.accepted {
		if seen[id] == 0 {
			lost++
			t.Errorf("%s %s accepted and never delivered", what, id)
		}
	}
	sort.Strings(storedAfter503)
	t.Logf("%ss: %d accepted, %d lost, %d answered 503 and stored all the same %v", what, len(ans.accepted), lost,
		len(storedAfter503), storedAfter503)
}
