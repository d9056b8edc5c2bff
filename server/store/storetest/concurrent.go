package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/server/store"
)

// NewNodes returns n stores on one shared, empty backend (the nodes of
// one cluster) for one subtest; the suite closes them.
type NewNodes func(t *testing.T, n int) []store.Store

// RunNodes runs the suite's concurrent cases with their goroutines spread
// over n stores on one backend, as a cluster's nodes share it.
func RunNodes(t *testing.T, n int, newNodes NewNodes) {
	for _, c := range concurrentCases {
		t.Run(c.name, func(t *testing.T) {
			nodes := newNodes(t, n)
			for _, s := range nodes {
				Start(t, s)
			}
			testConcurrentReplace(t, nodes, c.kind, c.queued)
		})
	}
}

// concurrentCases run on one store in Run, and on several in RunNodes.
var concurrentCases = []struct {
	name   string
	kind   replaceKind
	queued int // see testConcurrentReplace
}{
	{"ConcurrentTopicOnEmptyQueue", topicReplace, 0},
	{"ConcurrentTopicOverQueued", topicReplace, 1},
	{"ConcurrentTileMergeOnEmptyQueue", tileMerge, 0},
	{"ConcurrentTileMergeOverQueued", tileMerge, 1},
	{"ConcurrentTopicInFullQueue", topicReplace, full},
	{"ConcurrentTileMergeInFullQueue", tileMerge, full},
}

// full: the updates merge into a queued one in a queue at Depth; the
// plain notifications enqueued beside them are all refused as QueueFull,
// however the replacements make their room.
const full = 2

// How many enqueues the concurrent cases start at once: updates of one
// topic or tile, and plain notifications to the same device beside them
// (which move the device's queue under the merges). Within Depth.
const (
	concurrentUpdates = 24
	concurrentOthers  = 8
)

type replaceKind int

const (
	// topicReplace: a Web Push message with a Topic replaces the queued
	// one whole.
	topicReplace replaceKind = iota
	// tileMerge: a tile update is merged into the queued one, each
	// update's fields kept.
	tileMerge
)

// testConcurrentReplace enqueues many updates of one topic or tile at
// once, with plain notifications to the same device among them, over
// every node: exactly one update is left queued, the merge of them all
// (a tile) or the last committed (a topic), and each replaced the one
// committed before it. Nothing else is lost, duplicated or reordered.
//
// queued is 0 for an empty queue, 1 for one update queued before, and
// full for one update queued before in a queue at Depth.
func testConcurrentReplace(t *testing.T, nodes []store.Store, kind replaceKind, queued int) {
	overQueued, others := queued > 0, concurrentOthers
	ctx := context.Background()
	mustDevice(t, nodes[0], "dev")
	// Another node may not know of a device created moments ago.
	for i, s := range nodes[1:] {
		waitDevice(t, s, "dev", i+1)
	}
	watches := make([]*commits, len(nodes))
	for i, s := range nodes {
		watches[i] = watch(s)
	}
	const key = "ch\x00topic\x00news"
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	update := func(i int) store.Queued {
		token := fmt.Sprintf("u%02d", i)
		return store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "webpush", MessageID: token, Body: []byte(token), TileKey: key,
			AcceptedAt: epoch, DueAt: epoch.Add(time.Duration(i+2) * time.Minute), ExpiresAt: exp}
	}
	optsFor := func(q store.Queued) store.EnqueueOptions {
		opts := store.EnqueueOptions{MaxDepth: Depth}
		switch kind {
		case topicReplace:
			opts.Merge = func(store.Queued) ([]byte, bool) { return q.Body, true }
		case tileMerge:
			// Every field an update sets is kept: the bodies are sets
			// of the updates merged.
			opts.Merge = func(older store.Queued) ([]byte, bool) {
				return []byte(string(older.Body) + "," + string(q.Body)), true
			}
		}
		return opts
	}
	var seed store.Queued
	tokens := []string{}
	due := epoch.Add(time.Hour)
	var filled []uint64
	if queued == full {
		for i := range Depth - 1 {
			filled = append(filled, mustEnqueue(t, nodes[0], toast("dev", fmt.Sprintf("fill-%02d", i)), store.EnqueueOptions{MaxDepth: Depth}).Seq)
		}
	}
	if overQueued {
		seed = update(-1)
		seed.DueAt = epoch.Add(time.Minute)
		seed = mustEnqueue(t, nodes[0], seed, optsFor(seed))
		tokens = append(tokens, string(seed.Body))
		due = seed.DueAt
	}

	var (
		mu      sync.Mutex
		updates []store.Queued
		otherQs []store.Queued
		wg      sync.WaitGroup
		// untold: the node whose Enqueue returned a number before its
		// commit hook heard of it.
		untold = map[uint64]int{}
	)
	errs := make(chan error, concurrentUpdates+others)
	start := make(chan struct{})
	for i := range concurrentUpdates + others {
		node := i % len(nodes)
		q := toast("dev", fmt.Sprintf("other-%02d", i))
		isUpdate := i < concurrentUpdates
		if isUpdate {
			q = update(i)
			tokens = append(tokens, string(q.Body))
			due = minTime(due, q.DueAt)
		}
		opts := store.EnqueueOptions{MaxDepth: Depth}
		if isUpdate {
			opts = optsFor(q)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got, err := nodes[node].Enqueue(ctx, q, opts)
			if queued == full && !isUpdate {
				if !errors.Is(err, store.ErrQueueFull) {
					errs <- fmt.Errorf("node %d: enqueue %s to a full queue: %+v, %v; want %w", node, q.MessageID, got, err, store.ErrQueueFull)
				}
				return
			}
			if err != nil {
				errs <- fmt.Errorf("node %d: enqueue %s: %w", node, q.MessageID, err)
				return
			}
			told := watches[node].told("dev", got.Seq)
			mu.Lock()
			defer mu.Unlock()
			if !told {
				untold[got.Seq] = node
			}
			if isUpdate {
				updates = append(updates, got)
			} else {
				otherQs = append(otherQs, got)
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, w := range watches {
		w.mu.Lock()
		for _, b := range w.bad {
			t.Errorf("node %d: %s", i, b)
		}
		w.mu.Unlock()
	}
	if t.Failed() {
		t.FailNow()
	}

	// Each update replaced the one committed before it: one chain, no
	// update left beside another.
	slices.SortFunc(updates, func(a, b store.Queued) int { return cmpSeq(a.Seq, b.Seq) })
	for i, u := range updates {
		want := seed.Seq
		if i > 0 {
			want = updates[i-1].Seq
		}
		if u.Merged != want {
			t.Errorf("update %s (%d) replaced %d, want %d (the one committed before it)", u.MessageID, u.Seq, u.Merged, want)
		}
	}
	last := updates[len(updates)-1]

	qs, err := nodes[0].Pending(ctx, "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	var left []store.Queued
	var seqs, otherSeqs []uint64
	for _, q := range qs {
		seqs = append(seqs, q.Seq)
		if q.TileKey == key {
			left = append(left, q)
		} else {
			otherSeqs = append(otherSeqs, q.Seq)
		}
	}
	if !slices.IsSorted(seqs) {
		t.Errorf("pending out of order: %v", seqs)
	}
	wantOthers := filled
	for _, o := range otherQs {
		wantOthers = append(wantOthers, o.Seq)
	}
	slices.Sort(wantOthers)
	if !slices.Equal(otherSeqs, wantOthers) {
		t.Errorf("the other notifications pending: %v, want %v", otherSeqs, wantOthers)
	}
	if len(left) != 1 {
		var got []string
		for _, q := range left {
			got = append(got, fmt.Sprintf("%d:%s", q.Seq, q.MessageID))
		}
		t.Fatalf("%d concurrent updates over %d nodes left %d queued (%v), want 1", concurrentUpdates, len(nodes), len(left), got)
	}
	one := left[0]
	// An update another node replaced before this node's committer
	// reached it need not be told of; anything still queued must be.
	for seq, node := range untold {
		if len(nodes) == 1 || slices.Contains(seqs, seq) {
			t.Errorf("node %d: Enqueue returned %d before the commit hook heard of it", node, seq)
		}
	}
	if one.Seq != last.Seq || one.MessageID != last.MessageID {
		t.Errorf("left %d (%s), want the last committed, %d (%s)", one.Seq, one.MessageID, last.Seq, last.MessageID)
	}
	switch kind {
	case topicReplace:
		if string(one.Body) != last.MessageID {
			t.Errorf("left body %q, want the last committed one's, %q", one.Body, last.MessageID)
		}
	case tileMerge:
		got := strings.Split(string(one.Body), ",")
		slices.Sort(got)
		slices.Sort(tokens)
		if !slices.Equal(got, tokens) {
			t.Errorf("left the merge of %v, want of every update once: %v", got, tokens)
		}
		if !one.DueAt.Equal(due) {
			t.Errorf("left due %v, want the earliest deadline, %v", one.DueAt, due)
		}
	}
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// waitDevice waits until node i knows of a device another node created.
func waitDevice(t *testing.T, s store.Store, id string, i int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		_, err := s.Device(context.Background(), id)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d: device %s: %v", i, id, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
