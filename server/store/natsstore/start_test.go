package natsstore_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/natsstore"
)

// freePort is a loopback port nothing listens on (for now).
func freePort(t *testing.T) int { return natstest.FreePort(t) }

// waitArmed waits until the store has armed a timer on clk.
func waitArmed(t *testing.T, clk *clock.Fake) {
	t.Helper()
	for {
		changed := clk.Changed() // before looking, so no timer is missed
		if len(clk.Pending()) > 0 {
			return
		}
		select {
		case <-changed:
		case <-time.After(time.Minute): // a failsafe: the first attempt fails at once
			t.Fatal("the store never waited to try again")
		}
	}
}

// drive advances clk past every wait the store arms until it settles, so
// a test never sleeps for the store's backoff.
func drive(t *testing.T, clk *clock.Fake, s *natsstore.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for {
			changed := clk.Changed()
			if len(clk.Pending()) > 0 {
				clk.Advance(10 * time.Second)
				continue
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
}

// A store started before its NATS server answers at once, refuses every
// call as not ready (never a crash), says what it waits for without the
// server's address or credentials, and is ready once the server comes,
// after the wait its clock times.
func TestStartBeforeServer(t *testing.T) {
	port := freePort(t)
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	s, err := natsstore.Start(natsstore.Options{URLs: "nats://herald:s3cret@127.0.0.1:" + strconv.Itoa(port), Prefix: "early",
		Clock: clk, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The first attempt fails (nothing listens) and arms the backoff.
	waitArmed(t, clk)
	err = s.Ready()
	if !errors.Is(err, store.ErrNotReady) || !strings.Contains(err.Error(), "waiting for NATS") {
		t.Fatalf("Ready before the server: %v", err)
	}
	for _, leak := range []string{"s3cret", "herald:", strconv.Itoa(port)} {
		if strings.Contains(err.Error(), leak) {
			t.Fatalf("Ready tells %q: %v", leak, err)
		}
	}
	ctx := context.Background()
	s.OnTakeover(func(string, uint64) {})
	s.OnCommitted(func(store.Queued) {})
	calls := map[string]func() error{
		"Enqueue": func() error {
			_, err := s.Enqueue(ctx, store.Queued{DeviceID: "d", Kind: "raw"}, store.EnqueueOptions{})
			return err
		},
		"Device":                 func() error { _, err := s.Device(ctx, "d"); return err },
		"ChannelByToken":         func() error { _, err := s.ChannelByToken(ctx, "t"); return err },
		"ChannelByApp":           func() error { _, err := s.ChannelByApp(ctx, "d", "a"); return err },
		"CountChannels":          func() error { _, err := s.CountChannels(ctx, "d"); return err },
		"CountDevicesFromSource": func() error { _, err := s.CountDevicesFromSource(ctx, "1.2.3.4"); return err },
		"TouchDevice":            func() error { return s.TouchDevice(ctx, "d", time.Now()) },
		"Hold":                   func() error { _, err := s.Hold(ctx, "d"); return err },
		"HeldElsewhere":          func() error { _, err := s.HeldElsewhere(ctx, "d"); return err },
		"Take":                   func() error { _, err := s.Take(ctx, "c", 1, 5); return err },
		"QueueLength":            func() error { _, err := s.QueueLength(ctx); return err },
		"ExpiredDevices":         func() error { _, err := s.ExpiredDevices(ctx, time.Now(), 10); return err },
		"Pending":                func() error { _, err := s.Pending(ctx, "d", 0); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, store.ErrNotReady) {
			t.Errorf("%s before ready: %v; want unavailable, not ready", name, err)
		}
	}

	o := &server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Username: "herald", Password: "s3cret"}
	natstest.Start(t, o)
	drive(t, clk, s)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := s.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(); err != nil {
		t.Fatalf("Ready after Wait: %v", err)
	}
	if err := s.CreateDevice(ctx, store.Device{ID: "d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Enqueue(ctx, store.Queued{DeviceID: "d", Kind: "raw", Body: []byte("x")}, store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Waiting ends with its context (Ctrl-C while NATS is away), saying what
// it waited for; Close ends the set-up at once, whatever its clock.
func TestWaitEndsWithContextAndClose(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	s, err := natsstore.Start(natsstore.Options{URLs: "nats://127.0.0.1:" + strconv.Itoa(freePort(t)), Clock: clk, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Wait(ctx); !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "waiting for NATS") {
		t.Fatalf("Wait with a cancelled context: %v", err)
	}
	waitArmed(t, clk)
	closed := make(chan struct{})
	go func() { s.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second): // a failsafe: Close returns at once
		t.Fatal("Close did not end the wait for NATS")
	}
	if err := s.Wait(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Wait after Close: %v; want closed", err)
	}
	if _, err := s.Device(context.Background(), "d"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("a call after Close: %v", err)
	}
}

// Credentials NATS refuses end the wait with the reason instead of
// retrying for ever; a bad prefix is refused before anything starts.
func TestStartRefusedCredentials(t *testing.T) {
	o := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Username: "herald", Password: "right"}
	ns := natstest.Start(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for name, opt := range map[string][]nats.Option{
		"no credentials":     nil,
		"a wrong password":   {nats.UserInfo("herald", "wrong")},
		"an unknown user":    {nats.UserInfo("mallory", "right")},
		"a token for a user": {nats.Token("right")},
	} {
		_, err := natsstore.Open(ctx, natsstore.Options{URLs: ns.ClientURL(), NATS: opt, Logger: testenv.Logger(t)})
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: %v; want an authorization violation", name, err)
		}
	}
	if ctx.Err() != nil {
		t.Fatal("refused credentials were retried until the context ended")
	}
	s, err := natsstore.Open(ctx, natsstore.Options{URLs: ns.ClientURL(), NATS: []nats.Option{nats.UserInfo("herald", "right")}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := natsstore.Start(natsstore.Options{URLs: ns.ClientURL(), Prefix: "a.b"}); err == nil {
		t.Fatal("a prefix with a dot accepted")
	}
}

// Three stores started at the same instant as a fresh three-server
// cluster, before it has a JetStream leader, all become ready, bound to
// one set of buckets and one stream, and a notification enqueued on one
// is told to another.
func TestStartTogetherOnFreshCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server cluster")
	}
	c := natstest.NewCluster(t, 3)
	c.Launch(t)
	const nodes = 3
	stores := make([]*natsstore.Store, nodes)
	for i := range stores {
		s, err := natsstore.Start(natsstore.Options{URLs: c.URLs(), Replicas: 3, Prefix: "together", Logger: testenv.Logger(t).With("node", i)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	// A failsafe far above the seconds it takes: a cluster's election on
	// a loaded machine, then every store's backoff.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i, s := range stores {
		if err := s.Wait(ctx); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	told := make(chan store.Queued, 8)
	stores[2].OnCommitted(func(q store.Queued) {
		if q.DeviceID == "dev" {
			told <- q
		}
	})
	if err := stores[0].CreateDevice(ctx, store.Device{ID: "dev"}); err != nil {
		t.Fatal(err)
	}
	// Enqueued on the node that created the device: another may read a
	// replica a moment behind (docs/cluster.md).
	q, err := stores[0].Enqueue(ctx, store.Queued{DeviceID: "dev", Kind: "raw", Body: []byte("x")}, store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-told:
		if got.Seq != q.Seq {
			t.Fatalf("node 2 told of %d, want %d", got.Seq, q.Seq)
		}
	case <-ctx.Done():
		t.Fatal("node 2 never told of node 1's commit")
	}
	streams := streamNames(t, c.URLs(), 3)
	want := []string{"KV_together_channels", "KV_together_devices", "KV_together_nodes", "KV_together_outcomes", "KV_together_presence",
		"KV_together_quota", "TOGETHER_QUEUE"}
	if strings.Join(streams, " ") != strings.Join(want, " ") {
		t.Fatalf("streams %v, want %v", streams, want)
	}
}

// streamNames lists the streams on the servers, sorted, checking each is
// kept replicas times.
func streamNames(t *testing.T, urls string, replicas int) []string {
	t.Helper()
	nc, js := natstest.Connect(t, urls)
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var names []string
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		if info.Config.Replicas != replicas {
			t.Errorf("stream %s kept %d times, want %d", info.Config.Name, info.Config.Replicas, replicas)
		}
		names = append(names, info.Config.Name)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// A NATS user not allowed what the store needs ends the wait with the
// subject refused, instead of timing out for ever.
func TestStartRefusedSubject(t *testing.T) {
	o := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Users: []*server.User{{Username: "herald", Password: "pw", Permissions: &server.Permissions{
			Publish: &server.SubjectPermission{Deny: []string{"$JS.API.STREAM.CREATE.KV_herald_channels"}}}}}}
	ns := natstest.Start(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := natsstore.Open(ctx, natsstore.Options{URLs: ns.ClientURL(), NATS: []nats.Option{nats.UserInfo("herald", "pw")},
		Logger: testenv.Logger(t)})
	if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), "KV_herald_channels") {
		t.Fatalf("Open: %v; want the permissions violation", err)
	}
	if ctx.Err() != nil {
		t.Fatal("a refused subject was retried until the context ended")
	}
}

// A single NATS server restarted under running stores: they become ready
// again, and the nodes' liveness (a bucket in memory, which the restart
// empties or loses) comes back, so a device held by one node reads as
// held on the other.
func TestServerRestartedUnderStores(t *testing.T) {
	ns := natstest.Run(t)
	url := ns.URL()
	open := func() *natsstore.Store {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := natsstore.Open(ctx, natsstore.Options{URLs: url, Prefix: "restart", Logger: testenv.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	ctx := context.Background()
	if err := a.CreateDevice(ctx, store.Device{ID: "dev"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Hold(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	ns.Restart(t)
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats server not back")
	}
	testenv.Eventually(t, time.Minute, "both stores ready again", func() bool { return a.Ready() == nil && b.Ready() == nil })
	testenv.Eventually(t, time.Minute, "the device held by a, as b sees it", func() bool {
		held, err := b.HeldElsewhere(ctx, "dev")
		return err == nil && held
	})
	if _, err := b.Enqueue(ctx, store.Queued{DeviceID: "dev", Kind: "raw", Body: []byte("x")}, store.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkReady is the store's part of the readiness every notification
// checks: set up, and connected.
func BenchmarkReady(b *testing.B) {
	s, err := natsstore.Open(context.Background(), natsstore.Options{URLs: natstest.Run(b).URL(), Prefix: "bench", Logger: testenv.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if s.Ready() != nil {
				b.Fatal("not ready")
			}
		}
	})
}
