// Package storetest is the contract suite every store.Store backend must
// pass: run it from the backend's own tests with Run.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store"
)

// NewStore returns an empty store for one subtest; the suite runs its
// background work (store.Runner) and closes it.
type NewStore func(t *testing.T) store.Store

// epoch is where the suite's times start (millisecond precision, as every
// backend keeps at least).
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// wait bounds how long the suite waits for something a backend does in
// the background (AckLater); a failsafe, never what is measured.
const wait = 10 * time.Second

// Depth is the queue depth the suite bounds queues by (EnqueueOptions.
// MaxDepth): a backend that fixes its depth when opened is opened with it.
const Depth = 50

// Run runs the contract suite against stores made by newStore.
func Run(t *testing.T, newStore NewStore) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"Devices", testDevices},
		{"Channels", testChannels},
		{"TokenRotation", testTokenRotation},
		{"UnknownTokenNotFound", testUnknownToken},
		{"EnqueueUnknownDevice", testEnqueueUnknownDevice},
		{"ConcurrentEnqueueOrder", testConcurrentEnqueue},
		{"TileMergeTakesNewNumber", testTileMerge},
		{"QueueFullAtDepth", testQueueFull},
		{"AckAndAckLater", testAck},
		{"TouchLater", testTouchLater},
		{"PendingAfter", testPendingAfter},
		{"QueueLength", testQueueLength},
		{"NextSeqAboveEveryNumberGiven", testNextSeq},
		{"AckOutOfRange", testAckOutOfRange},
		{"RetireDevice", testRetire},
		{"ExpireDevices", testExpire},
		{"MessageExpiry", testMessageExpiry},
		{"TopicReplacesWhole", testTopicReplace},
		{"ChannelVAPIDKey", testChannelVAPIDKey},
		{"MessageStatus", testMessageStatus},
		{"CancelMessage", testCancelMessage},
		{"Requeue", testRequeue},
		{"CommitsReported", testCommitsReported},
		{"DevicesCurrent", testDevicesCurrent},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := Start(t, newStore(t))
			c.run(t, s)
		})
	}
	for _, c := range concurrentCases {
		t.Run(c.name, func(t *testing.T) {
			s := Start(t, newStore(t))
			testConcurrentReplace(t, []store.Store{s}, c.kind, c.queued)
		})
	}
}

func device(id string) store.Device {
	return store.Device{ID: id, SecretHash: []byte("hash-of-" + id), Source: "192.0.2.1", CreatedAt: epoch, LastSeen: epoch, Power: "normal"}
}

func mustDevice(t *testing.T, s store.Store, id string) {
	t.Helper()
	if err := s.CreateDevice(context.Background(), device(id)); err != nil {
		t.Fatalf("create device %s: %v", id, err)
	}
}

func mustChannel(t *testing.T, s store.Store, id, deviceID, app, token string) store.Channel {
	t.Helper()
	c := store.Channel{ID: id, DeviceID: deviceID, App: app, Name: "default", Token: token, Toast: true,
		Domains: []string{"img.example.com"}, Pinned: []string{"tile-a"}, CreatedAt: epoch}
	if err := s.CreateChannel(context.Background(), c); err != nil {
		t.Fatalf("create channel %s: %v", id, err)
	}
	return c
}

func toast(deviceID, text string) store.Queued {
	return store.Queued{DeviceID: deviceID, ChannelID: "ch", Kind: "toast", Class: 2, MessageID: text,
		Body: []byte("<toast>" + text + "</toast>"), AcceptedAt: epoch, DueAt: epoch}
}

func mustEnqueue(t *testing.T, s store.Store, q store.Queued, opts store.EnqueueOptions) store.Queued {
	t.Helper()
	got, err := s.Enqueue(context.Background(), q, opts)
	if err != nil {
		t.Fatalf("enqueue %s: %v", q.MessageID, err)
	}
	return got
}

func pendingSeqs(t *testing.T, s store.Store, deviceID string, after uint64) []uint64 {
	t.Helper()
	qs, err := s.Pending(context.Background(), deviceID, after)
	if err != nil {
		t.Fatalf("pending: %v", err)
	}
	var out []uint64
	for _, q := range qs {
		out = append(out, q.Seq)
	}
	return out
}

func testDevices(t *testing.T, s store.Store) {
	ctx := context.Background()
	want := device("dev-a")
	want.SecretHash = []byte{0, 1, 2, 0xfe, 0xff} // any bytes, zeros included
	if err := s.CreateDevice(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateDevice(ctx, device("dev-a")); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	mustDevice(t, s, "dev-b")
	other := device("dev-c")
	other.Source = "198.51.100.7"
	if err := s.CreateDevice(ctx, other); err != nil {
		t.Fatal(err)
	}
	got, err := s.Device(ctx, "dev-a")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.SecretHash, want.SecretHash) || got.Source != want.Source || got.Power != "normal" ||
		!got.CreatedAt.Equal(epoch) || !got.LastSeen.Equal(epoch) || got.AckedSeq != 0 {
		t.Fatalf("device = %+v, want %+v", got, want)
	}
	// Ids come from devices' hellos: none may name another key, subject
	// or row.
	for _, id := range []string{"nobody", "", "dev-a.x", "*", ">", "dev-*", "d.dev-a", "dev-a\x00", "../dev-a", "dev a", string(make([]byte, 500))} {
		if _, err := s.Device(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown device %q: %v, want ErrNotFound", id, err)
		}
		if qs, err := s.Pending(ctx, id, 0); err != nil || len(qs) != 0 {
			t.Fatalf("pending of unknown device %q: %v, %v", id, qs, err)
		}
	}
	seen := epoch.Add(90 * time.Minute)
	if err := s.TouchDevice(ctx, "dev-a", seen); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPower(ctx, "dev-a", "low"); err != nil {
		t.Fatal(err)
	}
	got, err = s.Device(ctx, "dev-a")
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastSeen.Equal(seen) || got.Power != "low" {
		t.Fatalf("after touch and power: last seen %v power %q", got.LastSeen, got.Power)
	}
	// The notification path's read sees this store's own writes at once.
	st, err := s.DeviceStatus(ctx, "dev-a")
	if err != nil || !st.LastSeen.Equal(seen) || st.Power != "low" || st.Source != want.Source || !st.CreatedAt.Equal(epoch) {
		t.Fatalf("DeviceStatus after touch and power = %+v, %v", st, err)
	}
	if err := s.SetPower(ctx, "dev-a", "critical"); err != nil {
		t.Fatal(err)
	}
	if st, err := s.DeviceStatus(ctx, "dev-a"); err != nil || st.Power != "critical" {
		t.Fatalf("DeviceStatus right after SetPower: %q, %v; want critical", st.Power, err)
	}
	for _, id := range []string{"nobody", "", "*", ">", "d.dev-a"} {
		if _, err := s.DeviceStatus(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DeviceStatus of unknown device %q: %v, want ErrNotFound", id, err)
		}
	}
	if n, err := s.CountDevicesFromSource(ctx, "192.0.2.1"); err != nil || n != 2 {
		t.Fatalf("devices from 192.0.2.1: %d, %v; want 2", n, err)
	}
	if n, err := s.CountDevicesFromSource(ctx, "203.0.113.9"); err != nil || n != 0 {
		t.Fatalf("devices from 203.0.113.9: %d, %v; want 0", n, err)
	}
}

func sameChannel(a, b store.Channel) bool {
	return a.ID == b.ID && a.DeviceID == b.DeviceID && a.App == b.App && a.Name == b.Name && a.Token == b.Token &&
		a.ServiceName == b.ServiceName && a.Toast == b.Toast && a.Tile == b.Tile && slices.Equal(a.Domains, b.Domains) &&
		slices.Equal(a.Pinned, b.Pinned) && a.CreatedAt.Equal(b.CreatedAt)
}

func testChannels(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	c := mustChannel(t, s, "ch-1", "dev", "mail", "tok-1")
	mustChannel(t, s, "ch-2", "dev", "news", "tok-2")
	dup := c
	dup.ID, dup.Token = "ch-3", "tok-3"
	if err := s.CreateChannel(ctx, dup); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second channel for the app: %v, want ErrExists", err)
	}
	for name, get := range map[string]func() (store.Channel, error){
		"by token": func() (store.Channel, error) { return s.ChannelByToken(ctx, "tok-1") },
		"by id":    func() (store.Channel, error) { return s.Channel(ctx, "ch-1") },
		"by app":   func() (store.Channel, error) { return s.ChannelByApp(ctx, "dev", "mail") },
	} {
		got, err := get()
		if err != nil || !sameChannel(got, c) {
			t.Fatalf("%s: %+v, %v; want %+v", name, got, err, c)
		}
	}
	if _, err := s.ChannelByApp(ctx, "dev", "other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown app: %v, want ErrNotFound", err)
	}
	if n, err := s.CountChannels(ctx, "dev"); err != nil || n != 2 {
		t.Fatalf("channels: %d, %v; want 2", n, err)
	}
	if err := s.SetBindings(ctx, "ch-1", false, true, []string{"cdn.example.org"}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.ChannelByToken(ctx, "tok-1")
	if err != nil || got.Toast || !got.Tile || !slices.Equal(got.Domains, []string{"cdn.example.org"}) || len(got.Pinned) != 0 {
		t.Fatalf("after bindings: %+v, %v", got, err)
	}
	if err := s.DeleteChannel(ctx, "ch-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChannelByToken(ctx, "tok-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted channel's token: %v, want ErrNotFound", err)
	}
	if _, err := s.Channel(ctx, "ch-1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted channel: %v, want ErrNotFound", err)
	}
	if n, err := s.CountChannels(ctx, "dev"); err != nil || n != 1 {
		t.Fatalf("channels after delete: %d, %v; want 1", n, err)
	}
	for name, err := range map[string]error{
		"delete":   s.DeleteChannel(ctx, "ch-1"),
		"bindings": s.SetBindings(ctx, "nothing", true, true, nil, nil),
		"token":    s.SetChannelToken(ctx, "nothing", "tok-9"),
	} {
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s of a missing channel: %v, want ErrNotFound", name, err)
		}
	}
	// The app may open a channel again once the old one is gone.
	mustChannel(t, s, "ch-4", "dev", "mail", "tok-4")
}

func testTokenRotation(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	mustChannel(t, s, "ch", "dev", "mail", "old-token")
	// Looked up once, so a backend that caches has it cached.
	if _, err := s.ChannelByToken(ctx, "old-token"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetChannelToken(ctx, "ch", "new-token"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChannelByToken(ctx, "old-token"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rotated-out token: %v, want ErrNotFound", err)
	}
	got, err := s.ChannelByToken(ctx, "new-token")
	if err != nil || got.ID != "ch" || got.Token != "new-token" {
		t.Fatalf("new token: %+v, %v", got, err)
	}
	if got, err := s.Channel(ctx, "ch"); err != nil || got.Token != "new-token" {
		t.Fatalf("by id after rotation: %+v, %v", got, err)
	}
}

func testUnknownToken(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, tok := range []string{"", "no-such-token", "../../etc/passwd", string(make([]byte, 300)), "tok\x00en", "\xff\xfe"} {
		if _, err := s.ChannelByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("token %q: %v, want ErrNotFound", tok, err)
		}
	}
	if _, err := s.Channel(ctx, "no-such-channel"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown channel id: %v, want ErrNotFound", err)
	}
}

func testEnqueueUnknownDevice(t *testing.T, s store.Store) {
	if _, err := s.Enqueue(context.Background(), toast("nobody", "x"), store.EnqueueOptions{MaxDepth: 10}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("enqueue for an unknown device: %v, want ErrNotFound", err)
	}
}

// commits records what OnCommitted is told.
type commits struct {
	mu   sync.Mutex
	seen map[string][]uint64
	bad  []string
}

func watch(s store.Store) *commits {
	c := &commits{seen: map[string][]uint64{}}
	s.OnCommitted(func(q store.Queued) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if store.IsResync(q) {
			return
		}
		if prev := c.seen[q.DeviceID]; len(prev) > 0 && q.Seq <= prev[len(prev)-1] {
			c.bad = append(c.bad, fmt.Sprintf("device %s: commit %d told after %d", q.DeviceID, q.Seq, prev[len(prev)-1]))
		}
		c.seen[q.DeviceID] = append(c.seen[q.DeviceID], q.Seq)
	})
	return c
}

func (c *commits) told(deviceID string, seq uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.seen[deviceID], seq)
}

// Concurrent enqueues for the same devices get increasing numbers per
// device, Pending returns them in order, and the commit hook hears of
// each, in order, before its Enqueue returns.
func testConcurrentEnqueue(t *testing.T, s store.Store) {
	const writers, each = 4, 12 // 48 per device, within Depth
	devices := []string{"dev-a", "dev-b"}
	for _, d := range devices {
		mustDevice(t, s, d)
	}
	c := watch(s)
	var mu sync.Mutex
	got := map[string][]uint64{}
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*len(devices))
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				for _, d := range devices {
					q, err := s.Enqueue(context.Background(), toast(d, fmt.Sprintf("w%d-%d", w, i)), store.EnqueueOptions{MaxDepth: Depth})
					if err != nil {
						errs <- err
						continue
					}
					if !c.told(d, q.Seq) {
						errs <- fmt.Errorf("device %s: Enqueue returned %d before the commit hook heard of it", d, q.Seq)
					}
					mu.Lock()
					got[d] = append(got[d], q.Seq)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c.mu.Lock()
	for _, b := range c.bad {
		t.Error(b)
	}
	c.mu.Unlock()
	for _, d := range devices {
		seqs := slices.Clone(got[d])
		slices.Sort(seqs)
		if len(slices.Compact(slices.Clone(seqs))) != writers*each {
			t.Fatalf("device %s: %d distinct numbers for %d notifications", d, len(slices.Compact(slices.Clone(seqs))), writers*each)
		}
		if p := pendingSeqs(t, s, d, 0); !slices.Equal(p, seqs) {
			t.Fatalf("device %s: pending %v, want %v", d, p, seqs)
		}
		c.mu.Lock()
		told := slices.Clone(c.seen[d])
		c.mu.Unlock()
		if !slices.Equal(told, seqs) {
			t.Fatalf("device %s: hook told %v, want %v", d, told, seqs)
		}
	}
}

func testTileMerge(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	c := watch(s)
	tile := func(body string, due time.Time) store.Queued {
		return store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "tile", Class: 1, Body: []byte(body), TileKey: "ch\x00main",
			AcceptedAt: epoch, DueAt: due}
	}
	merge := func(older store.Queued) ([]byte, bool) { return append(slices.Clone(older.Body), "+new"...), true }
	first := mustEnqueue(t, s, tile("old", epoch.Add(time.Minute)), store.EnqueueOptions{})
	between := mustEnqueue(t, s, toast("dev", "between"), store.EnqueueOptions{})
	merged := mustEnqueue(t, s, tile("new", epoch.Add(time.Hour)), store.EnqueueOptions{Merge: merge})
	if merged.Merged != first.Seq || merged.Seq <= between.Seq {
		t.Fatalf("merged %+v: want Merged %d and a number above %d", merged, first.Seq, between.Seq)
	}
	if string(merged.Body) != "old+new" || !merged.DueAt.Equal(epoch.Add(time.Minute)) {
		t.Fatalf("merged body %q due %v: want the merged body by the older deadline", merged.Body, merged.DueAt)
	}
	qs, err := s.Pending(ctx, "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || qs[0].Seq != between.Seq || qs[1].Seq != merged.Seq || string(qs[1].Body) != "old+new" ||
		qs[1].TileKey != "ch\x00main" || !qs[1].DueAt.Equal(epoch.Add(time.Minute)) {
		t.Fatalf("pending after merge: %+v", qs)
	}
	if !c.told("dev", merged.Seq) {
		t.Fatal("the hook was not told of the merged update")
	}
	// Refused merges and other tiles queue beside it.
	other := mustEnqueue(t, s, tile("kept", epoch), store.EnqueueOptions{Merge: func(store.Queued) ([]byte, bool) { return nil, false }})
	if other.Merged != 0 {
		t.Fatalf("refused merge reported Merged %d", other.Merged)
	}
	if p := pendingSeqs(t, s, "dev", 0); len(p) != 3 {
		t.Fatalf("pending after a refused merge: %v", p)
	}
}

func testQueueFull(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	mustDevice(t, s, "other")
	opts := store.EnqueueOptions{MaxDepth: Depth}
	var first store.Queued
	for i := range Depth {
		q := mustEnqueue(t, s, toast("dev", fmt.Sprint(i)), opts)
		if i == 0 {
			first = q
		}
	}
	if _, err := s.Enqueue(ctx, toast("dev", "over"), opts); !errors.Is(err, store.ErrQueueFull) {
		t.Fatalf("enqueue past the depth: %v, want ErrQueueFull", err)
	}
	// Another device's queue is its own.
	mustEnqueue(t, s, toast("other", "fine"), opts)
	// An ack makes room for one.
	if err := s.Ack(ctx, "dev", first.Seq); err != nil {
		t.Fatal(err)
	}
	tile := store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "tile", Body: []byte("t"), TileKey: "k", AcceptedAt: epoch, DueAt: epoch}
	mustEnqueue(t, s, tile, opts)
	if _, err := s.Enqueue(ctx, tile, opts); !errors.Is(err, store.ErrQueueFull) {
		t.Fatalf("unmergeable tile at the depth: %v, want ErrQueueFull", err)
	}
	// A merge keeps the depth, so it is taken at full depth.
	tileOpts := opts
	tileOpts.Merge = func(older store.Queued) ([]byte, bool) { return append(slices.Clone(older.Body), '+'), true }
	merged, err := s.Enqueue(ctx, tile, tileOpts)
	if err != nil {
		t.Fatalf("merge at full depth: %v", err)
	}
	qs, err := s.Pending(ctx, "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != Depth || qs[len(qs)-1].Seq != merged.Seq || string(qs[len(qs)-1].Body) != "t+" {
		t.Fatalf("queue holds %d ending %+v, want %d ending in the merged tile", len(qs), qs[len(qs)-1], Depth)
	}
}

func testAck(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	var seqs []uint64
	for i := range 5 {
		seqs = append(seqs, mustEnqueue(t, s, toast("dev", fmt.Sprint(i)), store.EnqueueOptions{}).Seq)
	}
	if err := s.Ack(ctx, "dev", seqs[1]); err != nil {
		t.Fatal(err)
	}
	if p := pendingSeqs(t, s, "dev", 0); !slices.Equal(p, seqs[2:]) {
		t.Fatalf("after ack %d: pending %v, want %v", seqs[1], p, seqs[2:])
	}
	if d, err := s.Device(ctx, "dev"); err != nil || d.AckedSeq != seqs[1] {
		t.Fatalf("acked seq %d, %v; want %d", d.AckedSeq, err, seqs[1])
	}
	// An older ack changes nothing.
	if err := s.Ack(ctx, "dev", seqs[0]); err != nil {
		t.Fatal(err)
	}
	if d, _ := s.Device(ctx, "dev"); d.AckedSeq != seqs[1] {
		t.Fatalf("an older ack moved the acked seq to %d", d.AckedSeq)
	}
	s.AckLater("dev", seqs[3])
	deadline := time.Now().Add(wait)
	for !slices.Equal(pendingSeqs(t, s, "dev", 0), seqs[4:]) {
		if time.Now().After(deadline) {
			t.Fatalf("AckLater(%d) never applied: pending %v", seqs[3], pendingSeqs(t, s, "dev", 0))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Numbers go on above everything given before.
	if q := mustEnqueue(t, s, toast("dev", "after"), store.EnqueueOptions{}); q.Seq <= seqs[4] {
		t.Fatalf("after acks: seq %d, want above %d", q.Seq, seqs[4])
	}
	// Acks for a device nobody knows harm nobody.
	s.AckLater("nobody", 7)
	if err := s.Ack(ctx, "nobody", 7); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ack for an unknown device: %v", err)
	}
}

func testPendingAfter(t *testing.T, s store.Store) {
	mustDevice(t, s, "dev")
	mustDevice(t, s, "empty")
	var seqs []uint64
	for i := range 6 {
		q := toast("dev", fmt.Sprint(i))
		q.DueAt = epoch.Add(time.Duration(i) * time.Minute)
		got := mustEnqueue(t, s, q, store.EnqueueOptions{})
		if !got.DueAt.Equal(q.DueAt) || got.MessageID != q.MessageID {
			t.Fatalf("enqueue returned %+v for %+v", got, q)
		}
		seqs = append(seqs, got.Seq)
	}
	for _, after := range []uint64{0, seqs[0], seqs[3], seqs[5], seqs[5] + 1000} {
		var want []uint64
		for _, s := range seqs {
			if s > after {
				want = append(want, s)
			}
		}
		if got := pendingSeqs(t, s, "dev", after); !slices.Equal(got, want) {
			t.Fatalf("pending after %d: %v, want %v", after, got, want)
		}
	}
	qs, err := s.Pending(context.Background(), "dev", seqs[2])
	if err != nil {
		t.Fatal(err)
	}
	q := qs[0]
	if q.DeviceID != "dev" || q.ChannelID != "ch" || q.Kind != "toast" || q.Class != 2 || q.MessageID != "3" ||
		string(q.Body) != "<toast>3</toast>" || !q.AcceptedAt.Equal(epoch) || !q.DueAt.Equal(epoch.Add(3*time.Minute)) {
		t.Fatalf("pending entry %+v", q)
	}
	if p := pendingSeqs(t, s, "empty", 0); len(p) != 0 {
		t.Fatalf("empty device pending %v", p)
	}
	if p := pendingSeqs(t, s, "nobody", 0); len(p) != 0 {
		t.Fatalf("unknown device pending %v", p)
	}
}

func testQueueLength(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "a")
	mustDevice(t, s, "b")
	var last store.Queued
	for i := range 3 {
		mustEnqueue(t, s, toast("a", fmt.Sprint(i)), store.EnqueueOptions{})
		last = mustEnqueue(t, s, toast("b", fmt.Sprint(i)), store.EnqueueOptions{})
	}
	if n, err := s.QueueLength(ctx); err != nil || n != 6 {
		t.Fatalf("queue length %d, %v; want 6", n, err)
	}
	if err := s.Ack(ctx, "b", last.Seq); err != nil {
		t.Fatal(err)
	}
	if n, err := s.QueueLength(ctx); err != nil || n != 3 {
		t.Fatalf("queue length after acks %d, %v; want 3", n, err)
	}
}

// testNextSeq: a device's NextSeq is above every number it was given,
// whether still queued or acknowledged and gone.
func testNextSeq(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	mustChannel(t, s, "ch", "dev", "app", "tok")
	d, err := s.Device(ctx, "dev")
	if err != nil {
		t.Fatal(err)
	}
	if d.NextSeq < 1 {
		t.Fatalf("new device: NextSeq %d, want at least 1", d.NextSeq)
	}
	var last uint64
	for i := range 3 {
		last = mustEnqueue(t, s, toast("dev", fmt.Sprint(i)), store.EnqueueOptions{}).Seq
	}
	if d, err = s.Device(ctx, "dev"); err != nil || d.NextSeq <= last {
		t.Fatalf("with %d queued: NextSeq %d, err %v; want above it", last, d.NextSeq, err)
	}
	if err := s.Ack(ctx, "dev", last); err != nil {
		t.Fatal(err)
	}
	if d, err = s.Device(ctx, "dev"); err != nil || d.NextSeq <= last {
		t.Fatalf("after acking %d: NextSeq %d, err %v; want above it", last, d.NextSeq, err)
	}
	// A lazy ack that empties the queue keeps the bound too: a device
	// must never be told it claims a number it was given.
	last = mustEnqueue(t, s, toast("dev", "lazy"), store.EnqueueOptions{}).Seq
	s.AckLater("dev", last)
	deadline := time.Now().Add(wait)
	for len(pendingSeqs(t, s, "dev", 0)) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("AckLater(%d) never applied", last)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d, err = s.Device(ctx, "dev"); err != nil || d.NextSeq <= last {
		t.Fatalf("after a lazy ack of %d: NextSeq %d, err %v; want above it", last, d.NextSeq, err)
	}
}

// testDevicesCurrent: a backend that promises current device reads
// (store.CurrentDevices) shows, in every Device call, a NextSeq above
// every number it had told OnCommitted of before the call began, while
// other commits are under way. A backend without the promise is not held
// to it.
func testDevicesCurrent(t *testing.T, s store.Store) {
	if c, ok := s.(store.CurrentDevices); !ok || !c.DevicesCurrent() {
		t.Skip("the backend does not promise current device reads")
	}
	ctx := context.Background()
	mustDevice(t, s, "dev")
	mustChannel(t, s, "ch", "dev", "app", "tok")
	var mu sync.Mutex
	var highest uint64
	s.OnCommitted(func(q store.Queued) {
		mu.Lock()
		highest = max(highest, q.Seq)
		mu.Unlock()
	})
	const senders, each = 4, 25
	errs := make(chan error, senders)
	for i := range senders {
		go func() {
			for j := range each {
				if _, err := s.Enqueue(ctx, toast("dev", fmt.Sprint(i, "-", j)), store.EnqueueOptions{}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for done := 0; done < senders; {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
			done++
		default:
		}
		mu.Lock()
		before := highest
		mu.Unlock()
		d, err := s.Device(ctx, "dev")
		if err != nil {
			t.Fatal(err)
		}
		if d.NextSeq <= before {
			t.Fatalf("NextSeq %d, though %d was told before the read", d.NextSeq, before)
		}
	}
}

// testAckOutOfRange: an ack above MaxSeq is refused with ErrSeqRange and
// leaves the queue alone; another device keeps being served.
func testAckOutOfRange(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	mustDevice(t, s, "other")
	mustChannel(t, s, "ch", "dev", "app", "tok")
	mustChannel(t, s, "och", "other", "app", "otok")
	q := mustEnqueue(t, s, toast("dev", "kept"), store.EnqueueOptions{})
	for _, seq := range []uint64{store.MaxSeq + 1, 1 << 63, 1<<64 - 1} {
		if err := s.Ack(ctx, "dev", seq); !errors.Is(err, store.ErrSeqRange) {
			t.Fatalf("Ack(%d) = %v, want ErrSeqRange", seq, err)
		}
		s.AckLater("dev", seq)
	}
	o := mustEnqueue(t, s, toast("other", "served"), store.EnqueueOptions{})
	if got := pendingSeqs(t, s, "dev", 0); !slices.Equal(got, []uint64{q.Seq}) {
		t.Fatalf("dev's queue after refused acks: %v, want [%d]", got, q.Seq)
	}
	if got := pendingSeqs(t, s, "other", 0); !slices.Equal(got, []uint64{o.Seq}) {
		t.Fatalf("other's queue: %v, want [%d]", got, o.Seq)
	}
}

// testRetire: a retired device keeps its record and key, with RetiredAt;
// its channels are gone and its queue is empty; other devices are not
// touched.
func testRetire(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	mustDevice(t, s, "other")
	mustChannel(t, s, "ch1", "dev", "app1", "tok1")
	mustChannel(t, s, "ch2", "dev", "app2", "tok2")
	mustChannel(t, s, "och", "other", "app1", "otok")
	mustEnqueue(t, s, toast("dev", "gone"), store.EnqueueOptions{})
	o := mustEnqueue(t, s, toast("other", "kept"), store.EnqueueOptions{})
	at := epoch.Add(time.Hour)
	if err := s.RetireDevice(ctx, "dev", at); err != nil {
		t.Fatal(err)
	}
	d, err := s.Device(ctx, "dev")
	if err != nil || !d.RetiredAt.Equal(at) || !bytes.Equal(d.SecretHash, device("dev").SecretHash) {
		t.Fatalf("retired device: %+v, %v; want its key kept and RetiredAt %v", d, err, at)
	}
	for _, tok := range []string{"tok1", "tok2"} {
		if _, err := s.ChannelByToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("channel of a retired device by token %s: %v, want ErrNotFound", tok, err)
		}
	}
	// A count on the store that deleted them reflects the deletions,
	// whichever replica serves it.
	if n, err := s.CountChannels(ctx, "dev"); err != nil || n != 0 {
		t.Fatalf("channels of a retired device: %d, %v", n, err)
	}
	if got := pendingSeqs(t, s, "dev", 0); len(got) != 0 {
		t.Fatalf("queue of a retired device: %v", got)
	}
	if _, err := s.ChannelByToken(ctx, "otok"); err != nil {
		t.Fatalf("another device's channel: %v", err)
	}
	if got := pendingSeqs(t, s, "other", 0); !slices.Equal(got, []uint64{o.Seq}) {
		t.Fatalf("another device's queue: %v", got)
	}
	if err := s.RetireDevice(ctx, "nobody", at); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("retiring an unknown device: %v, want ErrNotFound", err)
	}
}

// testExpire: devices last seen before a time are listed and deleted with
// their channels and queues; one seen since is kept.
func testExpire(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "old")
	mustDevice(t, s, "fresh")
	mustChannel(t, s, "och", "old", "app", "otok")
	mustChannel(t, s, "fch", "fresh", "app", "ftok")
	mustEnqueue(t, s, toast("old", "x"), store.EnqueueOptions{})
	if err := s.TouchDevice(ctx, "fresh", epoch.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	cutoff := epoch.Add(24 * time.Hour)
	ids, err := s.ExpiredDevices(ctx, cutoff, 10)
	if err != nil || !slices.Equal(ids, []string{"old"}) {
		t.Fatalf("ExpiredDevices = %v, %v; want [old]", ids, err)
	}
	// Seen again between the look and the delete: kept.
	if err := s.TouchDevice(ctx, "old", epoch.Add(30*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.DeleteDevice(ctx, "old", cutoff); err != nil || ok {
		t.Fatalf("deleting a device seen since: %v, %v; want kept", ok, err)
	}
	if err := s.TouchDevice(ctx, "old", epoch); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.DeleteDevice(ctx, "old", cutoff); err != nil || !ok {
		t.Fatalf("DeleteDevice = %v, %v; want deleted", ok, err)
	}
	if _, err := s.Device(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted device: %v, want ErrNotFound", err)
	}
	if _, err := s.DeviceStatus(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted device's status: %v, want ErrNotFound", err)
	}
	if _, err := s.ChannelByToken(ctx, "otok"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted device's channel: %v, want ErrNotFound", err)
	}
	if got := pendingSeqs(t, s, "old", 0); len(got) != 0 {
		t.Fatalf("deleted device's queue: %v", got)
	}
	if _, err := s.ChannelByToken(ctx, "ftok"); err != nil {
		t.Fatalf("the fresh device's channel: %v", err)
	}
	if ok, err := s.DeleteDevice(ctx, "nobody", cutoff); err != nil || ok {
		t.Fatalf("deleting an unknown device: %v, %v", ok, err)
	}
}

// A message whose ExpiresAt has come is never returned by Pending, and
// DeleteExpired leaves the live ones. The backends read expiry against
// the real clock here, so the times are an hour either side of it.
func testMessageExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	now := time.Now()
	wp := func(body string, exp time.Time) store.Queued {
		return store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "webpush", Body: []byte(body), AcceptedAt: now.Add(-2 * time.Hour),
			DueAt: now.Add(-2 * time.Hour), ExpiresAt: exp}
	}
	gone := mustEnqueue(t, s, wp("gone", now.Add(-time.Hour)), store.EnqueueOptions{})
	live := mustEnqueue(t, s, wp("live", now.Add(time.Hour)), store.EnqueueOptions{})
	forever := mustEnqueue(t, s, toast("dev", "no expiry"), store.EnqueueOptions{})
	named := wp("named", now.Add(-time.Minute))
	named.MessageID = "late"
	mustEnqueue(t, s, named, store.EnqueueOptions{})
	// A message past its TTL is never reported queued: expired, or
	// unknown once a backend's own expiry has removed it.
	notQueued := func(when string) {
		t.Helper()
		st, err := s.MessageStatus(ctx, "dev", "ch", "late")
		if (err == nil && st.State != store.MessageExpired) || (err != nil && !errors.Is(err, store.ErrNotFound)) {
			t.Fatalf("%s: status of an expired message %+v, %v; want expired or not found", when, st, err)
		}
	}
	notQueued("before the sweep")
	qs, err := s.Pending(ctx, "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || qs[0].Seq != live.Seq || qs[1].Seq != forever.Seq {
		t.Fatalf("pending = %+v; want %d and %d, not the expired %d", qs, live.Seq, forever.Seq, gone.Seq)
	}
	if !qs[0].ExpiresAt.Equal(now.Add(time.Hour).Truncate(time.Millisecond)) || !qs[1].ExpiresAt.IsZero() {
		t.Fatalf("expiries read back as %v and %v", qs[0].ExpiresAt, qs[1].ExpiresAt)
	}
	if _, err := s.DeleteExpired(ctx, 100); err != nil {
		t.Fatal(err)
	}
	if p := pendingSeqs(t, s, "dev", 0); len(p) != 2 || p[0] != live.Seq || p[1] != forever.Seq {
		t.Fatalf("pending after DeleteExpired: %v", p)
	}
	notQueued("after the sweep")
}

// A Web Push message with a topic replaces the queued one with the same
// topic whole, under a new number, through the merge path; another topic
// or channel queues beside it.
func testTopicReplace(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	c := watch(s)
	exp := time.Now().Add(time.Hour)
	wp := func(key, id, body string) store.Queued {
		return store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "webpush", MessageID: id, Body: []byte(body), TileKey: key,
			AcceptedAt: epoch, DueAt: epoch, ExpiresAt: exp}
	}
	replace := func(store.Queued) ([]byte, bool) { return nil, false }
	first := mustEnqueue(t, s, wp("ch\x00t\x00news", "m1", "old"), store.EnqueueOptions{Merge: replace})
	other := mustEnqueue(t, s, wp("ch\x00t\x00sport", "m2", "sport"), store.EnqueueOptions{Merge: replace})
	newer := wp("ch\x00t\x00news", "m3", "new")
	second := mustEnqueue(t, s, newer, store.EnqueueOptions{Merge: func(older store.Queued) ([]byte, bool) {
		return newer.Body, string(older.Body) == "old" && older.MessageID == "m1"
	}})
	if second.Merged != first.Seq || second.Seq <= other.Seq || second.MessageID != "m3" {
		t.Fatalf("replacement %+v: want Merged %d, a number above %d and the new id", second, first.Seq, other.Seq)
	}
	qs, err := s.Pending(ctx, "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || qs[0].Seq != other.Seq || qs[1].Seq != second.Seq || string(qs[1].Body) != "new" || qs[1].MessageID != "m3" ||
		!qs[1].ExpiresAt.Equal(exp.Truncate(time.Millisecond)) {
		t.Fatalf("pending after the replacement: %+v", qs)
	}
	if !c.told("dev", second.Seq) {
		t.Fatal("the hook was not told of the replacement")
	}
}

// A channel's application server key is kept and read back by every
// lookup.
func testChannelVAPIDKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	c := store.Channel{ID: "chv", DeviceID: "dev", App: "app", Name: "default", Token: "tokv", VAPIDKey: "BKey", CreatedAt: epoch,
		Domains: []string{}, Pinned: []string{}}
	if err := s.CreateChannel(ctx, c); err != nil {
		t.Fatal(err)
	}
	for name, get := range map[string]func() (store.Channel, error){
		"Channel":        func() (store.Channel, error) { return s.Channel(ctx, "chv") },
		"ChannelByToken": func() (store.Channel, error) { return s.ChannelByToken(ctx, "tokv") },
		"ChannelByApp":   func() (store.Channel, error) { return s.ChannelByApp(ctx, "dev", "app") },
	} {
		got, err := get()
		if err != nil || got.VAPIDKey != "BKey" {
			t.Errorf("%s: %+v, %v", name, got, err)
		}
	}
}

// testTouchLater: a lazy touch lands, a later durable touch is never moved
// back by an earlier lazy one, and an unknown device harms nobody.
func testTouchLater(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustDevice(t, s, "dev")
	mustDevice(t, s, "other")
	lastSeen := func(id string) time.Time {
		t.Helper()
		d, err := s.Device(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return d.LastSeen
	}
	waitSeen := func(id string, want time.Time) {
		t.Helper()
		deadline := time.Now().Add(wait)
		for !lastSeen(id).Equal(want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s last seen %v, want %v", id, lastSeen(id), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	s.TouchLater("nobody", epoch.Add(time.Hour))
	s.TouchLater("dev", epoch.Add(time.Hour))
	s.TouchLater("dev", epoch.Add(30*time.Minute)) // older: the later stays
	waitSeen("dev", epoch.Add(time.Hour))

	// A session that ends at once: its durable touch is later than the
	// lazy one from its hello, which must not move it back.
	if err := s.TouchDevice(ctx, "dev", epoch.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.TouchLater("dev", epoch.Add(2*time.Hour))
	s.TouchLater("other", epoch.Add(2*time.Hour))
	waitSeen("other", epoch.Add(2*time.Hour)) // given after dev's, so flushed with or after it
	if got := lastSeen("dev"); !got.Equal(epoch.Add(3 * time.Hour)) {
		t.Fatalf("an earlier lazy touch moved last seen back to %v", got)
	}
	if _, err := s.Device(ctx, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a touch for an unknown device made one: %v", err)
	}
}

// testCommitsReported: a store that reports its commits (both backends
// do) tells of every Enqueue's, with at least the one request and no
// error, by the time Enqueue returns.
func testCommitsReported(t *testing.T, s store.Store) {
	r, ok := s.(store.CommitReporter)
	if !ok {
		t.Skip("the store does not report its commits")
	}
	var mu sync.Mutex
	var commits, requests int
	r.ReportCommits(func(n int, took time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			t.Errorf("a commit reported %v", err)
		}
		if took < 0 {
			t.Errorf("a commit took %v", took)
		}
		commits++
		requests += n
	})
	mustDevice(t, s, "dev")
	for i := range 3 {
		mustEnqueue(t, s, toast("dev", fmt.Sprint(i)), store.EnqueueOptions{})
	}
	mu.Lock()
	defer mu.Unlock()
	if commits < 1 || requests < 3 {
		t.Fatalf("%d commits carrying %d requests reported for 3 enqueues", commits, requests)
	}
}
