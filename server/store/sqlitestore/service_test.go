package sqlitestore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/server/store/storetest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openService(t testing.TB, group bool) *sqlitestore.Store {
	t.Helper()
	s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: group})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Start(t, s)
	return s
}

func addDevice(t testing.TB, s *sqlitestore.Store, id string) {
	t.Helper()
	if err := s.CreateDevice(context.Background(), sqlitestore.Device{ID: id, SecretHash: []byte("h"), CreatedAt: t0, LastSeen: t0}); err != nil {
		t.Fatal(err)
	}
}

func queued(dev, msg string) sqlitestore.Queued {
	return sqlitestore.Queued{DeviceID: dev, ChannelID: "ch", Kind: "raw", Class: 3, MessageID: msg, Body: []byte(msg), AcceptedAt: t0, DueAt: t0}
}

func TestEnqueueSequenceDepthAck(t *testing.T) {
	ctx := context.Background()
	s := openService(t, true)
	addDevice(t, s, "d1")
	addDevice(t, s, "d2")
	opts := sqlitestore.EnqueueOptions{MaxDepth: 3}
	tests := []struct {
		dev     string
		wantSeq uint64
		wantErr error
	}{
		{"d1", 1, nil}, {"d1", 2, nil}, {"d2", 1, nil}, {"d1", 3, nil},
		{"d1", 0, sqlitestore.ErrQueueFull}, {"d2", 2, nil},
		{"nobody", 0, sqlitestore.ErrNotFound},
	}
	for i, tt := range tests {
		q, err := s.Enqueue(ctx, queued(tt.dev, fmt.Sprint(i)), opts)
		if !errors.Is(err, tt.wantErr) || q.Seq != tt.wantSeq {
			t.Fatalf("step %d: seq %d err %v, want seq %d err %v", i, q.Seq, err, tt.wantSeq, tt.wantErr)
		}
	}
	// A full queue does not use up a sequence number.
	if err := s.Ack(ctx, "d1", 2); err != nil {
		t.Fatal(err)
	}
	q, err := s.Enqueue(ctx, queued("d1", "after"), opts)
	if err != nil || q.Seq != 4 {
		t.Fatalf("after ack: seq %d err %v, want 4", q.Seq, err)
	}
	p, err := s.Pending(ctx, "d1", 0)
	if err != nil || len(p) != 2 || p[0].Seq != 3 || p[1].Seq != 4 {
		t.Fatalf("pending %+v err %v", p, err)
	}
	if p, _ := s.Pending(ctx, "d1", 3); len(p) != 1 || p[0].MessageID != "after" {
		t.Fatalf("pending after 3: %+v", p)
	}
	dev, err := s.Device(ctx, "d1")
	if err != nil || dev.AckedSeq != 2 {
		t.Fatalf("acked seq %d err %v", dev.AckedSeq, err)
	}
	// A device that has applied more than the store ever numbered (the
	// store was restored from an older copy) gets numbers above it.
	if err := s.Ack(ctx, "d2", 40); err != nil {
		t.Fatal(err)
	}
	if q, err := s.Enqueue(ctx, queued("d2", "x"), opts); err != nil || q.Seq != 41 {
		t.Fatalf("after a device ahead of the store: seq %d err %v, want 41", q.Seq, err)
	}
}

func TestEnqueueMerge(t *testing.T) {
	ctx := context.Background()
	s := openService(t, true)
	addDevice(t, s, "d")
	concat := func(later sqlitestore.Queued) func(sqlitestore.Queued) ([]byte, bool) {
		return func(older sqlitestore.Queued) ([]byte, bool) {
			return append(append([]byte{}, older.Body...), later.Body...), true
		}
	}
	tile := func(key, body string, due time.Duration) sqlitestore.Queued {
		q := queued("d", body)
		q.Kind, q.TileKey, q.DueAt = "tile", key, t0.Add(due)
		return q
	}
	enq := func(q sqlitestore.Queued, opts sqlitestore.EnqueueOptions) sqlitestore.Queued {
		t.Helper()
		if q.TileKey != "" && opts.Merge == nil {
			opts.Merge = concat(q)
		}
		got, err := s.Enqueue(ctx, q, opts)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	a1 := enq(tile("A", "a1", 900*time.Second), sqlitestore.EnqueueOptions{})
	enq(queued("d", "raw"), sqlitestore.EnqueueOptions{})
	a2 := enq(tile("A", "a2", 0), sqlitestore.EnqueueOptions{MaxDepth: 2})
	if a2.Merged != a1.Seq || a2.Seq <= a1.Seq {
		t.Fatalf("merge: %+v", a2)
	}
	b := enq(tile("B", "b", 0), sqlitestore.EnqueueOptions{})
	refuse := tile("A", "a3", 0)
	a3 := enq(refuse, sqlitestore.EnqueueOptions{Merge: func(sqlitestore.Queued) ([]byte, bool) { return nil, false }})
	if b.Merged != 0 || a3.Merged != 0 {
		t.Fatalf("unexpected merges: %+v %+v", b, a3)
	}
	p, err := s.Pending(ctx, "d", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, q := range p {
		got = append(got, fmt.Sprintf("%d:%s", q.Seq, q.Body))
	}
	want := []string{"2:raw", "3:a1a2", "4:b", "5:a3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("queue %v, want %v", got, want)
	}
	if !p[1].DueAt.Equal(t0) {
		t.Fatalf("merged due %v, want the earlier deadline", p[1].DueAt)
	}
}

// TestGroupCommitShares checks that concurrent enqueues share transactions
// when group commit is on and do not when it is off, and that every
// enqueue gets its own sequence number either way.
func TestGroupCommitShares(t *testing.T) {
	for _, group := range []bool{true, false} {
		t.Run(fmt.Sprint("group=", group), func(t *testing.T) {
			s := openService(t, group)
			addDevice(t, s, "d")
			before := s.Commits()
			const n = 200
			var wg sync.WaitGroup
			seen := make([]atomic.Bool, n+1)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					q, err := s.Enqueue(context.Background(), queued("d", fmt.Sprint(i)), sqlitestore.EnqueueOptions{})
					if err != nil || q.Seq < 1 || q.Seq > n || seen[q.Seq].Swap(true) {
						t.Errorf("enqueue %d: seq %d err %v", i, q.Seq, err)
					}
				}()
			}
			wg.Wait()
			c := s.Commits() - before
			if group && c >= n || !group && c != n {
				t.Fatalf("%d commits for %d enqueues (group commit %v)", c, n, group)
			}
		})
	}
}

func TestEnqueueAfterClose(t *testing.T) {
	s := openService(t, true)
	addDevice(t, s, "d")
	s.Close()
	if _, err := s.Enqueue(context.Background(), queued("d", "x"), sqlitestore.EnqueueOptions{}); !errors.Is(err, sqlitestore.ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

// BenchmarkDurableAccepts measures durable enqueues per second from many
// concurrent senders, with group commit and with one transaction (and one
// fsync) per enqueue.
func BenchmarkDurableAccepts(b *testing.B) {
	for _, mode := range []struct {
		name  string
		group bool
	}{{"group_commit", true}, {"tx_per_request", false}} {
		b.Run(mode.name, func(b *testing.B) {
			s := openService(b, mode.group)
			const devices = 64
			for i := 0; i < devices; i++ {
				addDevice(b, s, fmt.Sprint("d", i))
			}
			var next atomic.Int64
			before := s.Commits()
			b.SetParallelism(16) // 16 × GOMAXPROCS concurrent senders
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					if _, err := s.Enqueue(context.Background(), queued(fmt.Sprint("d", i%devices), "m"), sqlitestore.EnqueueOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "accepts/s")
			b.ReportMetric(float64(b.N)/float64(max(s.Commits()-before, 1)), "per_commit")
		})
	}
}

// TestAckLater checks that acks nobody waits for are committed: with the
// next transaction, on their own after AckDelay, and at Close.
func TestAckLater(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "svc.db")
	s, err := sqlitestore.Open(ctx, file, sqlitestore.Options{GroupCommit: true, AckDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Start(t, s)
	addDevice(t, s, "d")
	for i := 0; i < 4; i++ {
		if _, err := s.Enqueue(ctx, queued("d", fmt.Sprint(i)), sqlitestore.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pending := func(st *sqlitestore.Store) []uint64 {
		t.Helper()
		qs, err := st.Pending(ctx, "d", 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []uint64
		for _, q := range qs {
			out = append(out, q.Seq)
		}
		return out
	}
	// Acks coalesce, and ride in the next transaction whatever it is.
	s.AckLater("d", 1)
	s.AckLater("d", 2)
	s.AckLater("d", 1)
	if got := pending(s); len(got) != 4 {
		t.Fatalf("before any commit: pending %v, want all 4", got)
	}
	addDevice(t, s, "other")
	if got := pending(s); fmt.Sprint(got) != "[3 4]" {
		t.Fatalf("after the next commit: pending %v, want [3 4]", got)
	}
	// One left waiting is committed when the store closes.
	s.AckLater("d", 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = sqlitestore.Open(ctx, file, sqlitestore.Options{GroupCommit: true, AckDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	storetest.Start(t, s)
	if got := pending(s); fmt.Sprint(got) != "[4]" {
		t.Fatalf("after close and reopen: pending %v, want [4]", got)
	}
	// Alone, an ack is committed after AckDelay.
	s.AckLater("d", 4)
	testenv.Eventually(t, 10*time.Second, "a lone lazy ack committed", func() bool { return len(pending(s)) == 0 })
	d, err := s.Device(ctx, "d")
	if err != nil || d.AckedSeq != 4 {
		t.Fatalf("device %+v, %v: want acked_seq 4", d, err)
	}
}
