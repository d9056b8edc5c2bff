package natsstore_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/natsstore"
	"github.com/heraldpush/herald/server/store/storetest"
)

// Each subtest has its own buckets and stream on the shared servers.
func contract(t *testing.T, urls string, replicas int) {
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: urls, Replicas: replicas,
			QueueDepth: storetest.Depth, Prefix: fmt.Sprintf("t%d", n.Add(1)), Timeout: contractTimeout})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// contractTimeout bounds each request of the contract's stores. The
// contract is about what a store keeps, not how fast: three servers
// replicating under the race detector on a loaded two-core machine can
// take seconds over a write, and a write that timed out and was tried
// again reads as a broken promise (a channel "already exists").
const contractTimeout = time.Minute

func TestContractSingleServer(t *testing.T) {
	contract(t, natstest.Run(t).URL(), 1)
}

func TestContractClusterR3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server cluster")
	}
	contract(t, natstest.RunCluster(t, 3).URLs(), 3)
}

// nodes opens n stores on one prefix, store i on urls[i%len(urls)]
// alone, so that a cluster's stores each publish through their own server.
func nodes(urls []string, replicas int) storetest.NewNodes {
	var prefix atomic.Int64
	return func(t *testing.T, n int) []store.Store {
		p := fmt.Sprintf("n%d", prefix.Add(1))
		var out []store.Store
		for i := range n {
			s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: urls[i%len(urls)], Replicas: replicas,
				QueueDepth: storetest.Depth, Prefix: p, Timeout: contractTimeout})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
}

func TestContractNodesSingleServer(t *testing.T) {
	storetest.RunNodes(t, 3, nodes([]string{natstest.Run(t).URL()}, 1))
}

func TestContractNodesClusterR3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server cluster")
	}
	c := natstest.RunCluster(t, 3)
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.URL())
	}
	storetest.RunNodes(t, 3, nodes(urls, 3))
}

// Concurrent takes from two stores (two nodes) never count past the
// limit, and a new day starts again.
func TestQuotaAcrossNodes(t *testing.T) {
	url := natstest.Run(t).URL()
	open := func() *natsstore.Store {
		s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: url, Prefix: "quota"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	nodes := []*natsstore.Store{open(), open()}
	const limit, tries = 25, 80
	var taken atomic.Int64
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tries / 8 {
				ok, err := nodes[i%2].Take(context.Background(), "channel-1", 20500, limit)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					taken.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if taken.Load() != limit {
		t.Fatalf("took %d, want exactly %d", taken.Load(), limit)
	}
	for name, c := range map[string]struct {
		channel string
		day     int64
		limit   int
		want    bool
	}{
		"the next day":      {"channel-1", 20501, limit, true},
		"another channel":   {"channel-2", 20500, limit, true},
		"a limit of zero":   {"channel-3", 20500, 0, false},
		"an odd channel id": {"../x y\x00", 20500, 1, true},
	} {
		if ok, err := nodes[0].Take(context.Background(), c.channel, c.day, c.limit); err != nil || ok != c.want {
			t.Errorf("%s: %v, %v; want %v", name, ok, err, c.want)
		}
	}
}

// A node counts a busy channel's daily quota in leases: a round trip
// every few notifications, not two replicated operations each; another
// node still gets all but what the first holds ahead, and the two never
// hand out more than the limit.
func TestQuotaLeases(t *testing.T) {
	url := natstest.Run(t).URL()
	open := func() *natsstore.Store {
		s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: url, Prefix: "lease"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	ctx := context.Background()
	const limit, takes = 500, 100
	for i := range takes {
		if ok, err := a.Take(ctx, "busy", 20500, limit); err != nil || !ok {
			t.Fatalf("take %d: %v, %v", i, ok, err)
		}
	}
	writes, err := natsstore.QuotaWrites(a)
	if err != nil {
		t.Fatal(err)
	}
	// Leases of 1, 2, 4, 8 and then 16: 10 writes for 100 counts.
	if writes > 12 {
		t.Errorf("%d takes wrote the shared counter %d times, want at most 12", takes, writes)
	}
	took := takes
	for {
		ok, err := b.Take(ctx, "busy", 20500, limit)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		took++
		if took > limit {
			t.Fatalf("the two nodes took more than the limit of %d", limit)
		}
	}
	// What a holds ahead is lost to b, and no more: leases shrink to a
	// quarter of what is left.
	if took < limit-16 {
		t.Errorf("the nodes took %d of %d: more is held ahead than a lease", took, limit)
	}
	for {
		ok, err := a.Take(ctx, "busy", 20500, limit)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		took++
	}
	if took != limit {
		t.Errorf("took %d once both ran out, want exactly %d", took, limit)
	}
}

// An ack beyond any sequence the stream can give is refused and leaves
// the queue as it was.
func TestAckOutOfRange(t *testing.T) {
	ctx := context.Background()
	s, err := natsstore.Open(ctx, natsstore.Options{URLs: natstest.Run(t).URL(), Prefix: "ackrange"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateDevice(ctx, store.Device{ID: "dev"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", Kind: "raw", Body: []byte("x")}, store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{1 << 63, 1<<64 - 1} {
		if err := s.Ack(ctx, "dev", seq); err == nil {
			t.Errorf("ack %d accepted", seq)
		}
	}
	if qs, err := s.Pending(ctx, "dev", 0); err != nil || len(qs) != 1 {
		t.Fatalf("after out-of-range acks: %d queued, %v; want 1", len(qs), err)
	}
	if d, err := s.Device(ctx, "dev"); err != nil || d.AckedSeq != 0 {
		t.Fatalf("acked seq %d, %v; want 0", d.AckedSeq, err)
	}
}

// What one node writes reaches the other nodes' watched copies, which
// answer the notification path without asking NATS.
func TestCopiesFollowOtherNodes(t *testing.T) {
	t.Run("single server", func(t *testing.T) { testCopies(t, natstest.Run(t).URL(), 1) })
	t.Run("cluster R3", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a 3-server cluster")
		}
		testCopies(t, natstest.RunCluster(t, 3).URLs(), 3)
	})
}

func testCopies(t *testing.T, url string, replicas int) {
	open := func() *natsstore.Store {
		// As heraldsvc opens it: the context ends when Open returns.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := natsstore.Open(ctx, natsstore.Options{URLs: url, Prefix: "copies", Replicas: replicas})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	ctx := context.Background()
	now := time.Now()
	if err := a.CreateDevice(ctx, store.Device{ID: "dev", SecretHash: []byte("h"), CreatedAt: now, LastSeen: now, Power: "normal"}); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateChannel(ctx, store.Channel{ID: "ch", DeviceID: "dev", App: "app", Name: "default", Token: "tok", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Hold(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ch, dev, held := natsstore.Copies(b, "tok", "dev")
		if ch && dev && held {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node b's copies after 10 s: channel %v, device %v, held %v", ch, dev, held)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if held, err := b.HeldElsewhere(ctx, "dev"); err != nil || !held {
		t.Fatalf("b: held elsewhere = %v, %v; want true", held, err)
	}
	// A channel bound on one node, then posted to on another at once
	// (what an app and its cloud service do): the copy, which may not
	// have the binding yet, does not answer for a channel changed a
	// moment ago. (With replicas, a read may still meet a replica a
	// moment behind; one server has none.)
	if err := a.SetBindings(ctx, "ch", true, false, nil, nil); err != nil {
		t.Fatal(err)
	}
	if replicas == 1 {
		if ch, err := b.ChannelByToken(ctx, "tok"); err != nil || !ch.Toast {
			t.Fatalf("b right after a's bind: toast %v, %v; want bound", ch.Toast, err)
		}
	}
	if err := a.SetPower(ctx, "dev", "low"); err != nil {
		t.Fatal(err)
	}
	for {
		d, err := b.DeviceStatus(ctx, "dev")
		if err != nil {
			t.Fatal(err)
		}
		if d.Power == "low" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b never saw the power change: %q", d.Power)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Hold tells the node that held the device before, whether this node's
// copy of the held bucket has caught up or not; Release lets go only of
// what this node still holds.
func TestHoldTellsThePreviousHolder(t *testing.T) {
	url := natstest.Run(t).URL()
	open := func() (*natsstore.Store, chan uint64) {
		s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: url, Prefix: "hold"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		told := make(chan uint64, 8)
		s.OnTakeover(func(dev string, held uint64) {
			if dev == "dev" {
				told <- held
			}
		})
		return s, told
	}
	a, toldA := open()
	b, toldB := open()
	ctx := context.Background()
	told := func(ch chan uint64, want uint64, who string) {
		t.Helper()
		select {
		case got := <-ch:
			if got != want {
				t.Fatalf("%s told of the Hold numbered %d, want %d", who, got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never told of the takeover", who)
		}
	}
	waitCopy := func(s *natsstore.Store) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for _, _, held := natsstore.Copies(s, "", "dev"); !held; _, _, held = natsstore.Copies(s, "", "dev") {
			if time.Now().After(deadline) {
				t.Fatal("the copy never saw the hold")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if _, err := a.Hold(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	// b at once, before its copy may know of a's hold.
	rb, err := b.Hold(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	told(toldA, rb, "a")
	// a again, once its copy knows of b's hold: the compare-and-set path.
	waitCopy(a)
	ra, err := a.Hold(ctx, "dev")
	if err != nil || ra <= rb {
		t.Fatalf("a's second hold: %d, %v; want above %d", ra, err, rb)
	}
	told(toldB, ra, "b")
	// b lets go of what it no longer holds: a still holds it.
	if err := b.Release(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if held, err := b.HeldElsewhere(ctx, "dev"); err != nil || !held {
		t.Fatalf("after b's stale release: held elsewhere %v, %v; want a still holding", held, err)
	}
	waitCopy(a)
	if err := a.Release(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	// Held again after a release: nobody to tell.
	if _, err := b.Hold(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-toldA:
		t.Fatalf("a told of a takeover (%d) after it let go", n)
	case <-time.After(100 * time.Millisecond):
	}
}

// An enqueue on a node that does not hold the device does not wait for
// that node's follower of the stream (the device's session is on another
// node, whose hook is the one that matters): the holder's hook and its
// reads have every commit, in order, and so, a moment later, has the
// sender's hook. Once the device is held by the sender's node, its
// enqueues wait again, and its hook is told before they return.
func TestEnqueueForADeviceHeldElsewhere(t *testing.T) {
	url := natstest.Run(t).URL()
	open := func() *natsstore.Store {
		s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: url, Prefix: "elsewhere"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	type told struct {
		mu   sync.Mutex
		seqs []uint64
	}
	hook := func(s *natsstore.Store) *told {
		c := &told{}
		s.OnCommitted(func(q store.Queued) {
			if q.DeviceID != "dev" {
				return
			}
			c.mu.Lock()
			c.seqs = append(c.seqs, q.Seq)
			c.mu.Unlock()
		})
		return c
	}
	seen := func(c *told) []uint64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return slices.Clone(c.seqs)
	}
	holder, sender := open(), open()
	atHolder, atSender := hook(holder), hook(sender)
	ctx := context.Background()
	now := time.Now()
	if err := holder.CreateDevice(ctx, store.Device{ID: "dev", SecretHash: []byte("h"), CreatedAt: now, LastSeen: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Hold(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	// The sender's copy answers for the holder once it has known for a
	// while (the copy's trust period).
	deadline := time.Now().Add(20 * time.Second)
	for !natsstore.HeldByOther(sender, "dev") {
		if time.Now().After(deadline) {
			t.Fatal("the sender's copy never learned that the holder holds the device")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if natsstore.HeldByOther(holder, "dev") {
		t.Fatal("the holder's copy says another node holds the device")
	}
	enqueue := func(s *natsstore.Store, body string) uint64 {
		t.Helper()
		q, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "raw", Class: 3, Body: []byte(body),
			AcceptedAt: now, DueAt: now}, store.EnqueueOptions{MaxDepth: 100})
		if err != nil {
			t.Fatal(err)
		}
		return q.Seq
	}
	waits := natsstore.PassWaits(sender)
	var want []uint64
	for i := range 10 {
		want = append(want, enqueue(sender, strconv.Itoa(i)))
	}
	if got := natsstore.PassWaits(sender) - waits; got != 0 {
		t.Errorf("%d of 10 enqueues for a device held elsewhere waited for the sender's follower", got)
	}
	if p := pendingSeqs(t, holder); !slices.Equal(p, want) {
		t.Fatalf("the holder reads %v, want %v", p, want)
	}
	for _, c := range []struct {
		name string
		told *told
	}{{"holder", atHolder}, {"sender", atSender}} {
		for !slices.Equal(seen(c.told), want) {
			if time.Now().After(deadline) {
				t.Fatalf("the %s's hook was told %v, want %v in order", c.name, seen(c.told), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// The device moves to the sender's node.
	if _, err := sender.Hold(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if natsstore.HeldByOther(sender, "dev") {
		t.Fatal("the sender holds the device and its copy says another node does")
	}
	seq := enqueue(sender, "after the move")
	if !slices.Contains(seen(atSender), seq) {
		t.Fatalf("enqueue %d on the device's node returned before its hook was told", seq)
	}
}

func pendingSeqs(t *testing.T, s *natsstore.Store) []uint64 {
	t.Helper()
	qs, err := s.Pending(context.Background(), "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, q := range qs {
		out = append(out, q.Seq)
	}
	return out
}

// BenchmarkEnqueueFromAnotherNode: one sender after another on node b,
// for a device node a holds (b does not wait for its own follower of the
// stream) and for a device held by none (b waits for it), on a
// three-server R3 cluster.
func BenchmarkEnqueueFromAnotherNode(b *testing.B) {
	url := natstest.RunCluster(b, 3).URLs()
	open := func() *natsstore.Store {
		s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: url, Prefix: "bench", Replicas: 3})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	holder, sender := open(), open()
	ctx := context.Background()
	now := time.Now()
	for _, dev := range []string{"held", "away"} {
		if err := holder.CreateDevice(ctx, store.Device{ID: dev, SecretHash: []byte("h"), CreatedAt: now, LastSeen: now}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := holder.Hold(ctx, "held"); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !natsstore.HeldByOther(sender, "held"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the sender's copy never learned that the holder holds the device")
		}
	}
	for _, dev := range []string{"held", "away"} {
		b.Run(dev, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				q, err := sender.Enqueue(ctx, store.Queued{DeviceID: dev, ChannelID: "ch", Kind: "raw", Class: 3, Body: []byte("x"),
					AcceptedAt: now, DueAt: now}, store.EnqueueOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if i%100 == 99 {
					// Keep the queue below its depth.
					if err := holder.Ack(ctx, dev, q.Seq); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
