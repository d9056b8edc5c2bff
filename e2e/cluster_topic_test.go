package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/natsstore"
	"github.com/heraldpush/herald/wire"
)

// Web Push messages of one Topic POSTed all at once over every node of a
// cluster, to a device that is away, leave one queued: the device comes
// back to exactly one, one of those answered 201. Every POST is answered
// 201 or 503 (the store could not settle it in time), never anything
// else. The one left is one answered 201, unless some were answered 503:
// a publish whose answer timed out may still have been stored, as a
// retried one would be.
func TestClusterTopicBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	nc := natstest.RunCluster(t, 3)
	nodes := []*server.Service{clusterNode(t, nc, "node-a"), clusterNode(t, nc, "node-b"), clusterNode(t, nc, "node-c")}
	// The cases of the report: two POSTs over two nodes, 40 to one, 120
	// over three.
	for _, c := range []struct{ posts, nodes int }{{2, 2}, {40, 1}, {120, 3}} {
		t.Run(fmt.Sprintf("%d over %d", c.posts, c.nodes), func(t *testing.T) {
			topicBurst(t, nodes[:c.nodes], c.posts, false)
		})
	}
	// With a store timeout far below what a burst of conflicting updates
	// takes to settle, many updates end at their deadline, some between
	// their publish and the delete of the entry they replaced: still one
	// is left, and the device is sent one (or none, if every update was
	// refused before it was stored, as on a loaded machine under -race).
	t.Run("120 over 3, store timeout 150ms", func(t *testing.T) {
		var short []*server.Service
		for _, name := range []string{"short-a", "short-b", "short-c"} {
			short = append(short, clusterNodeStore(t, nc, name, server.Limits{DailyQuota: -1}, natsstore.Options{Timeout: 150 * time.Millisecond}))
		}
		topicBurst(t, short, 120, true)
	})
}

// topicBurst posts the burst over nodes and checks what the device comes
// back to; mayRefuseAll accepts every POST answered 503, and then at most
// one left.
func topicBurst(t *testing.T, nodes []*server.Service, posts int, mayRefuseAll bool) {
	d := &wsDevice{}
	conn := d.dial(t, nodes[0])
	uri := d.open(t, conn, "raw-app")
	conn.Close()
	testenv.Eventually(t, 10*time.Second, "the device away", func() bool { return !nodes[0].Connected(d.id) })

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted []string // bodies answered 201
		refused  []string // bodies answered 503
		codes    = map[int]int{}
	)
	start := make(chan struct{})
	for i := range posts {
		body := fmt.Sprintf("m%03d", i)
		req, err := http.NewRequest(http.MethodPost, on(nodes[i%len(nodes)], uri), bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("TTL", "600")
		req.Header.Set("Topic", "score")
		req.Header.Set("Content-Encoding", "aes128gcm")
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Errorf("POST %s: %v", body, err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			codes[res.StatusCode]++
			if res.StatusCode == http.StatusCreated {
				accepted = append(accepted, body)
			} else {
				refused = append(refused, body)
			}
		}()
	}
	close(start)
	wg.Wait()
	for code, n := range codes {
		if code != http.StatusCreated && code != http.StatusServiceUnavailable {
			t.Errorf("%d POSTs answered %d, want 201 or 503", n, code)
		}
	}
	if len(accepted) == 0 && !mayRefuseAll {
		t.Fatalf("no POST of %d accepted: %v", posts, codes)
	}

	// Everything queued before the marker is what the burst left. A node
	// that found its store slow in the burst sheds load for a moment.
	testenv.Eventually(t, 10*time.Second, "the marker accepted", func() bool {
		r := post(t, on(nodes[len(nodes)-1], uri), mpnsRequest{body: []byte("marker")})
		if r.status != http.StatusServiceUnavailable && (r.status != http.StatusOK || r.notification != "Received") {
			t.Fatalf("marker: %d %s", r.status, r.notification)
		}
		return r.status == http.StatusOK
	})
	conn = d.dial(t, nodes[len(nodes)-1])
	var left []string
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for marker := false; !marker; {
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for the marker (after %v): %v", left, err)
		}
		f, err := wire.DecodeService(data)
		batch, ok := f.(*wire.Notify)
		if err != nil || !ok {
			continue
		}
		for _, n := range batch.Notifications {
			switch n.Kind {
			case string(mpns.KindWebPush):
				left = append(left, string(n.Body))
			default:
				marker = string(n.Body) == "marker"
			}
		}
	}
	conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	t.Logf("%d POSTs of one Topic over %d nodes: answered %v; the device got %d (%v)", posts, len(nodes), codes, len(left), left)
	if len(accepted) == 0 && len(left) == 0 {
		return // every update refused, none stored
	}
	if len(left) != 1 || !slices.Contains(accepted, left[0]) && !slices.Contains(refused, left[0]) {
		t.Fatalf("the device got %v, want one of the %d messages answered 201 (or of the %d answered 503)", left, len(accepted), len(refused))
	}
}
