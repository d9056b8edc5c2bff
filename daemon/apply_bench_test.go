package daemon_test

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// applyRig is a real daemon, linked to a real service over loopback, whose
// notify batches the test hands to the daemon's link handler directly, as
// the link does with each notify frame it reads. Its apps:
//   - mail: toast and tile bound, not running (toasts go to the shell);
//   - chat: running, its event stream read by a real client on the socket;
//   - sync: not running, so its raw notifications are dropped.
type applyRig struct {
	d       *testenv.Daemon
	h       channel.Handler
	service string
	ids     map[string]string // app → channel id
	seq     uint64            // the last sequence number handed over

	shown    atomic.Int64 // toasts the shell displayed
	changes  atomic.Int64 // changes reported to the observer (the UI)
	received atomic.Int64 // raw events the chat app took
}

type countingDisplay struct{ n *atomic.Int64 }

func (c countingDisplay) Show(context.Context, platform.Toast) error {
	c.n.Add(1)
	return nil
}

func newApplyRig(tb testing.TB) *applyRig {
	tb.Helper()
	svc := testenv.Service(tb, "", server.ServeConfig{})
	r := &applyRig{service: svc.URL(), ids: map[string]string{}}
	// The observer is set as herald run sets it for its start screen, so
	// the benchmark pays what the real daemon pays after each commit.
	r.d = testenv.StartDaemon(tb, daemon.Config{Service: svc.URL(), Display: countingDisplay{&r.shown},
		OnChange: func(daemon.Change) { r.changes.Add(1) }})
	r.h = daemon.LinkHandler(r.d.Daemon)
	yes := true
	for _, a := range []string{"mail", "chat", "sync"} {
		req := app.OpenRequest{}
		if a == "mail" {
			req.Toast, req.Tile = &yes, &yes
		}
		ch, err := r.d.Client.Open(context.Background(), a, req)
		if err != nil {
			tb.Fatalf("opening %s: %v", a, err)
		}
		r.ids[a] = ch.ChannelID
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := r.d.Client.Listen(ctx, "chat", app.ListenOptions{})
	if err != nil {
		cancel()
		tb.Fatalf("listening as chat: %v", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			e, err := s.Next(ctx)
			if err != nil {
				return
			}
			if e.Type == app.EventRaw {
				r.received.Add(1)
			}
		}
	}()
	tb.Cleanup(func() {
		cancel()
		s.Close()
		wg.Wait()
	})
	id, err := r.d.StoreForTest().Identity(context.Background(), r.service)
	if err != nil {
		tb.Fatal(err)
	}
	r.seq = id.AppliedSeq
	return r
}

// Payloads as senders send them; the tile's count changes with every
// update, so each merge writes a new state.
const (
	benchToast = `<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Toast>` +
		`<wp:Text1>Anna Lindqvist</wp:Text1><wp:Text2>Are we still on for lunch at 12:30?</wp:Text2>` +
		`<wp:Param>/Views/Conversation.xaml?thread=8f3c2a&amp;msg=104233</wp:Param></wp:Toast></wp:Notification>`
	benchTileHead = `<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification" Version="2.0">` +
		`<wp:Tile Template="FlipTile"><wp:Title>Work mail</wp:Title><wp:BackTitle>unread</wp:BackTitle>` +
		`<wp:BackContent>Quarterly report draft</wp:BackContent><wp:WideBackContent>Quarterly report draft, Lunch on Friday?</wp:WideBackContent><wp:Count>`
	benchTileTail = `</wp:Count></wp:Tile></wp:Notification>`
	benchRaw      = `{"sync":true,"folder":"inbox","unread":12,"since":"2026-11-27T04:00:00Z"}`
)

// What one notification in a mix is.
const (
	toastShell   = "toast"
	tileUpdate   = "tile"
	rawListening = "raw-listening"
	rawClosed    = "raw-closed"
)

var tileBodies = func() [][]byte {
	out := make([][]byte, 100)
	for i := range out {
		out[i] = []byte(benchTileHead + strconv.Itoa(i) + benchTileTail)
	}
	return out
}()

// batch fills ns with the next len(ns) notifications, cycling through mix,
// and counts them by kind in tally.
func (r *applyRig) batch(ns []wire.Notification, mix []string, tally map[string]int64) {
	for i := range ns {
		r.seq++
		what := mix[int(r.seq)%len(mix)]
		n := wire.Notification{Seq: r.seq, MessageID: fmt.Sprintf("3f2504e0-4f89-11d3-9a0c-%012d", r.seq)}
		switch what {
		case toastShell:
			n.ChannelID, n.Kind, n.Class, n.Body = r.ids["mail"], "toast", 2, []byte(benchToast)
		case tileUpdate:
			n.ChannelID, n.Kind, n.Class, n.Body = r.ids["mail"], "tile", 1, tileBodies[r.seq%100]
		case rawListening:
			n.ChannelID, n.Kind, n.Class, n.Body = r.ids["chat"], "raw", 3, []byte(benchRaw)
		case rawClosed:
			n.ChannelID, n.Kind, n.Class, n.Body = r.ids["sync"], "raw", 3, []byte(benchRaw)
		}
		ns[i] = n
		tally[what]++
	}
}

type applySnapshot struct {
	counters               map[string]int64
	applied                uint64
	shown, changes, events int64
}

func (r *applyRig) snapshot(tb testing.TB) applySnapshot {
	tb.Helper()
	c, err := r.d.StoreForTest().Counters(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	id, err := r.d.StoreForTest().Identity(context.Background(), r.service)
	if err != nil {
		tb.Fatal(err)
	}
	return applySnapshot{counters: c, applied: id.AppliedSeq, shown: r.shown.Load(), changes: r.changes.Load(), events: r.received.Load()}
}

// check verifies exactly-once bookkeeping since before: every notification
// handed over counted once under its outcome, the applied sequence number
// at the last one, each shell toast displayed once, and each raw
// notification for the running app taken by it once.
func (r *applyRig) check(tb testing.TB, before applySnapshot, tally map[string]int64) {
	tb.Helper()
	testenv.Eventually(tb, 30*time.Second, "the chat app taking its raw notifications", func() bool {
		return r.received.Load()-before.events >= tally[rawListening]
	})
	after := r.snapshot(tb)
	if after.applied != r.seq {
		tb.Errorf("applied_seq = %d, want %d", after.applied, r.seq)
	}
	for _, c := range []struct {
		name string
		want int64
	}{
		{daemon.CountToastsShell, tally[toastShell]},
		{daemon.CountTilesUpdated, tally[tileUpdate]},
		{daemon.CountRawDelivered, tally[rawListening]},
		{daemon.CountRawDropped, tally[rawClosed]},
		{daemon.CountPayloadErrors, 0},
		{daemon.CountBadContent, 0},
		{daemon.CountUnknownChannel, 0},
	} {
		if got := after.counters[c.name] - before.counters[c.name]; got != c.want {
			tb.Errorf("counter %s went up by %d, want %d", c.name, got, c.want)
		}
	}
	var total int64
	for _, n := range tally {
		total += n
	}
	if got := after.shown - before.shown; got != tally[toastShell] {
		tb.Errorf("the shell displayed %d toasts, want %d", got, tally[toastShell])
	}
	if got := after.changes - before.changes; got != total {
		tb.Errorf("the observer heard of %d changes, want %d", got, total)
	}
	if got := after.events - before.events; got != tally[rawListening] {
		tb.Errorf("the chat app took %d raw notifications, want %d", got, tally[rawListening])
	}
}

var applyMixes = []struct {
	name string
	mix  []string
}{
	{"mixed", []string{toastShell, tileUpdate, rawListening, rawClosed}},
	{toastShell, []string{toastShell}},
	{tileUpdate, []string{tileUpdate}},
	{rawListening, []string{rawListening}},
	{rawClosed, []string{rawClosed}},
}

// BenchmarkApply measures the daemon's apply-and-record path: notify
// batches applied in one transaction each with the new sequence number,
// counters, toasts, tile state and app events, then the effects outside the
// database (display, observer, waking the app's stream). Each sub-benchmark
// ends by checking the bookkeeping, so a faster path that loses or repeats
// a notification fails here.
func BenchmarkApply(b *testing.B) {
	r := newApplyRig(b)
	ctx := context.Background()
	for _, m := range applyMixes {
		for _, size := range []int{1, 12} {
			b.Run(fmt.Sprintf("%s/batch=%d", m.name, size), func(b *testing.B) {
				tally := map[string]int64{}
				before := r.snapshot(b)
				ns := make([]wire.Notification, size)
				b.ReportAllocs()
				cpu0 := cpuTime(b)
				for b.Loop() {
					r.batch(ns, m.mix, tally)
					if err := r.h.Apply(ctx, ns); err != nil {
						b.Fatal(err)
					}
				}
				if s := b.Elapsed().Seconds(); s > 0 {
					b.ReportMetric(float64(b.N*size)/s, "applies/s")
				}
				// CPU time says what applying costs when the wall time is
				// mostly fsync waits, and varies less with other load.
				b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N*size), "cpu-µs/apply")
				b.StopTimer()
				r.check(b, before, tally)
			})
		}
	}
}

// cpuTime is the CPU time this process has used: the daemon, and the
// service and app it talks to, which are mostly idle here.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestApplyExactlyOnce hands the daemon batches as the link would after
// reconnects: fresh ones, one already applied (its ack was lost), and one
// straddling what was applied. Each notification takes effect once.
func TestApplyExactlyOnce(t *testing.T) {
	r := newApplyRig(t)
	ctx := context.Background()
	mix := applyMixes[0].mix
	before := r.snapshot(t)
	tally := map[string]int64{}
	var batches [][]wire.Notification
	for range 3 {
		ns := make([]wire.Notification, 12)
		r.batch(ns, mix, tally)
		batches = append(batches, ns)
		if err := r.h.Apply(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	afterFresh := maps.Clone(tally)
	// Resent whole: nothing more happens.
	if err := r.h.Apply(ctx, batches[1]); err != nil {
		t.Fatal(err)
	}
	// Resent from the middle of the last batch, with new ones after it:
	// only the new ones take effect.
	straddle := append([]wire.Notification{}, batches[2][6:]...)
	fresh := make([]wire.Notification, 5)
	r.batch(fresh, mix, tally)
	if err := r.h.Apply(ctx, append(straddle, fresh...)); err != nil {
		t.Fatal(err)
	}
	if tally[toastShell] == afterFresh[toastShell] && tally[tileUpdate] == afterFresh[tileUpdate] {
		t.Fatal("the straddling batch brought nothing new; the test would prove nothing")
	}
	r.check(t, before, tally)
}
