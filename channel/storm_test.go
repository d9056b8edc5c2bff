package channel_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// stormDevices is how many devices the storm test runs: 5,000 by default
// (10,000 descriptors in this one process), HERALD_STORM_DEVICES for more.
// Under the race detector it runs 2,000, to stay well under a minute on two
// cores: 5,000 take about 80 s there, most of it connecting them at first.
var stormBatch = 500

func stormDevices(t testing.TB) int {
	if v := os.Getenv("HERALD_STORM_DEVICES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("HERALD_STORM_DEVICES=%q", v)
		}
		return n
	}
	if testing.Short() {
		return 500
	}
	if raceEnabled {
		return 2000
	}
	return 5000
}

// fleet is many lightweight devices (links with in-memory handlers) on one
// fake clock.
type fleet struct {
	t     testing.TB
	fc    *clock.Fake
	links []*channel.Link
}

// quiet reports whether every device has finished what the clock has let
// it do so far: it is connected, or waiting for a moment still ahead.
func (f *fleet) quiet() (connected int, ok bool) {
	now := f.fc.Now()
	for _, l := range f.links {
		st := l.Stats()
		switch {
		case st.State == channel.StateConnected:
			connected++
		case st.State == channel.StateWaiting && st.RetryAt.After(now):
		default:
			return connected, false
		}
	}
	return connected, true
}

// run advances the clock a second at a time, letting every device act
// between steps, until all are connected or limit has passed. It returns
// how long that took on the clock.
func (f *fleet) run(limit time.Duration) time.Duration {
	f.t.Helper()
	start := f.fc.Now()
	for {
		var connected int
		testenv.Eventually(f.t, 60*time.Second, "devices to settle", func() bool {
			var ok bool
			connected, ok = f.quiet()
			return ok
		})
		if connected == len(f.links) {
			return f.fc.Now().Sub(start)
		}
		if f.fc.Now().Sub(start) > limit {
			f.t.Fatalf("only %d of %d devices connected after %v", connected, len(f.links), limit)
		}
		f.fc.Advance(time.Second)
	}
}

// step advances the clock by d a second at a time, letting every device
// act between steps.
func (f *fleet) step(d time.Duration) {
	f.t.Helper()
	for end := f.fc.Now().Add(d); f.fc.Now().Before(end); {
		f.fc.Advance(time.Second)
		testenv.Eventually(f.t, 60*time.Second, "devices to settle", func() bool { _, ok := f.quiet(); return ok })
	}
}

// perSecond buckets the devices' connection times, in seconds from start.
func (f *fleet) perSecond(start time.Time) []int {
	var buckets []int
	for _, l := range f.links {
		s := int(l.Stats().Since.Sub(start) / time.Second)
		for len(buckets) <= s {
			buckets = append(buckets, 0)
		}
		buckets[s]++
	}
	return buckets
}

// serialStore serialises the service's writes. The service opens SQLite
// with a pool of connections, and concurrent writers then wait in SQLite's
// sleeping busy handler: in this test 16 ms a write instead of 1.8 ms, which
// would make the storm take minutes of real time (see docs/power.md).
type serialStore struct {
	server.Store
	mu sync.Mutex
}

func (s *serialStore) TouchDevice(ctx context.Context, id string, seen time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Store.TouchDevice(ctx, id, seen)
}

func (s *serialStore) CreateDevice(ctx context.Context, d store.Device) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Store.CreateDevice(ctx, d)
}

// stormService is a notification service on a real SQLite file and a
// loopback port, assembled by hand so the test can stop it and start it
// again on the same port.
type stormService struct {
	*server.Server
	store *sqlitestore.Store
	http  *http.Server
	ln    net.Listener
	done  chan struct{}
}

func startStormService(t testing.TB, db, addr string, cfg server.Config) *stormService {
	t.Helper()
	store := testenv.SQLiteStore(t, db, sqlitestore.Options{GroupCommit: true})
	ln, err := server.Listen(context.Background(), addr)
	if err != nil {
		store.Close()
		t.Fatalf("listening on %s: %v", addr, err)
	}
	cfg.Store, cfg.PublicURL = &serialStore{Store: store}, "http://"+ln.Addr().String()
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &stormService{Server: srv, store: store, http: &http.Server{Handler: srv.Handler()}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.http.Serve(ln)
	}()
	return s
}

// stop shuts the service down as heraldsvc does: no new connections, every
// device told to retry later, the database closed.
func (s *stormService) stop() {
	s.http.Close()
	<-s.done
	s.Server.Close()
	s.store.Close()
}

// enrol creates n devices in one transaction, as if they had enrolled long
// ago, and returns their identities. The service keeps SHA-256 hashes of
// device secrets.
func enrol(t testing.TB, db string, n int) []channel.Identity {
	t.Helper()
	conn, err := sql.Open("sqlite3", "file:"+db+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.Begin()
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]channel.Identity, n)
	for i := range ids {
		ids[i] = channel.Identity{ID: fmt.Sprintf("storm-%05d", i), Secret: fmt.Sprintf("secret-%05d-%d", i, time.Now().UnixNano())}
		h := sha256.Sum256([]byte(ids[i].Secret))
		if _, err := tx.Exec(`INSERT INTO devices (id, secret_hash, created_at, last_seen) VALUES (?, ?, 0, 0)`, ids[i].ID, h[:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestReconnectStorm has thousands of devices lose the service at once (it
// shuts down, asking them to retry later) and stay away while it is down;
// when it comes back on the same port they must return spread out, not in
// lockstep, and every one must end up connected.
func TestReconnectStorm(t *testing.T) {
	n := stormDevices(t)
	const (
		spread = time.Minute      // the service's retry-later window
		down   = 20 * time.Second // how long the service stays away
	)
	db := filepath.Join(t.TempDir(), "heraldsvc.db")
	fc := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	// Thousands of devices log tens of thousands of lines: formatting them
	// only to discard them would dominate the test.
	quiet := slog.New(slog.DiscardHandler)
	if os.Getenv("HERALD_TEST_LOG") != "" {
		quiet = testenv.Logger(t)
	}
	cfg := server.Config{Clock: fc, RetrySpread: spread, Logger: quiet}
	svc := startStormService(t, db, "127.0.0.1:0", cfg)
	defer func() { svc.stop() }()
	ids := enrol(t, db, n)
	url := "http://" + svc.ln.Addr().String()

	f := &fleet{t: t, fc: fc}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	realStart := time.Now()
	for i := range n {
		h := newMemHandler("storm")
		h.id = ids[i]
		l, err := channel.New(channel.Config{Service: url, Handler: h, Clock: fc,
			Logger:    quiet,
			Heartbeat: channel.MeteredHeartbeatCeiling, BackoffMin: time.Second, BackoffMax: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		f.links = append(f.links, l)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Run(ctx)
		}()
		// Connect in batches: the first rush is not what this test measures.
		if (i+1)%stormBatch == 0 || i == n-1 {
			f.run(10 * time.Minute)
		}
	}
	connected := time.Since(realStart)
	// A connection older than 30 s is healthy: backoff starts over.
	fc.Advance(time.Minute)

	realStart = time.Now()
	svc.stop()
	f.step(down)
	svc = startStormService(t, db, svc.ln.Addr().String(), cfg) // the same port
	back := fc.Now()
	took := f.run(spread + 2*time.Minute)

	buckets := f.perSecond(back)
	peak := slices.Max(buckets)
	busy := 0
	for _, b := range buckets {
		if b > 0 {
			busy++
		}
	}
	t.Logf("%d devices (connected in %v): the service went away for %v; all back %v after it returned (%v real); peak %d connections/s; %d busy seconds; per second %v",
		n, connected.Round(time.Millisecond), down, took, time.Since(realStart).Round(time.Millisecond), peak, busy, buckets)
	if got := svc.ConnectedCount(); got != n {
		t.Fatalf("service has %d devices, want %d", got, n)
	}
	// In lockstep every device would arrive in the same second. Spread,
	// the busiest second is the first after the return, with the devices
	// whose retries had already begun (about 8% of them).
	if limit := n / 5; peak > limit {
		t.Fatalf("peak %d connections in one second, want at most %d (n/5): %v", peak, limit, buckets)
	}
	if busy < 20 {
		t.Fatalf("reconnections came in only %d distinct seconds: %v", busy, buckets)
	}
	if took > spread+time.Minute {
		t.Fatalf("took %v for all to come back, want under %v", took, spread+time.Minute)
	}
}
