package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

func statusOf(r answer) string {
	return strconv.Itoa(r.code) + " " + r.header.Get("X-NotificationStatus")
}

func TestDailyQuotaRollsOverWithTheDay(t *testing.T) {
	var cfg server.ServeConfig
	cfg.Server.Limits.DailyQuota = 2
	e := startEnv(t, cfg) // the clock starts at 23:00 UTC
	d := mustDial(t, e.svc.URL())
	a, b := d.open("a", ""), d.open("b", "")

	steps := []struct {
		name    string
		advance time.Duration
		uri     string
		want    string
	}{
		{"first", 0, a.URI, "200 Received"},
		{"second", 0, a.URI, "200 Received"},
		{"third is over the quota", 0, a.URI, "406 Dropped"},
		{"another channel has its own quota", 0, b.URI, "200 Received"},
		{"still the same day at 23:59:59", 59*time.Minute + 59*time.Second, a.URI, "406 Dropped"},
		{"a new day at midnight UTC", time.Second, a.URI, "200 Received"},
		{"second of the new day", 0, a.URI, "200 Received"},
		{"third of the new day", 0, a.URI, "406 Dropped"},
	}
	for _, s := range steps {
		e.clock.Advance(s.advance)
		r := postMPNS(t, nil, http.MethodPost, s.uri, rawHeaders(), "x")
		if got := statusOf(r); got != s.want {
			t.Fatalf("%s: got %s (%s), want %s", s.name, got, r.body, s.want)
		}
	}
}

func TestRateLimits(t *testing.T) {
	var cfg server.ServeConfig
	cfg.Server.Limits = server.Limits{ChannelRate: 1, ChannelBurst: 2, SenderRate: 2, SenderBurst: 3}
	e := startEnv(t, cfg)
	d := mustDial(t, e.svc.URL())
	a, b := d.open("a", ""), d.open("b", "")

	steps := []struct {
		name    string
		advance time.Duration
		uri     string
		want    string
	}{
		{"channel burst 1", 0, a.URI, "200 Received"},
		{"channel burst 2", 0, a.URI, "200 Received"},
		{"channel rate exceeded", 0, a.URI, "406 Dropped"},
		{"sender burst used up by now", 0, b.URI, "406 Dropped"},
		{"a second later: one more for the channel", time.Second, a.URI, "200 Received"},
		{"and none after it", 0, a.URI, "406 Dropped"},
		{"nor for another channel", 0, b.URI, "406 Dropped"},
		{"later again", 2 * time.Second, b.URI, "200 Received"},
	}
	for _, s := range steps {
		e.clock.Advance(s.advance)
		r := postMPNS(t, nil, http.MethodPost, s.uri, rawHeaders(), "x")
		if got := statusOf(r); got != s.want {
			t.Fatalf("%s: got %s (%s), want %s", s.name, got, r.body, s.want)
		}
		if r.code == http.StatusNotAcceptable && r.header.Get("X-SubscriptionStatus") != "Active" {
			t.Fatalf("%s: 406 with subscription %q", s.name, r.header.Get("X-SubscriptionStatus"))
		}
	}
}

// slowStore wraps the real store: while slow is set, each channel lookup
// takes 2 s of the fake clock; while gate is set, lookups wait for it.
type slowStore struct {
	server.Store
	clock   *clock.Fake
	slow    atomic.Bool
	mu      sync.Mutex
	gate    chan struct{}
	waiting atomic.Int32
}

func (s *slowStore) ChannelByToken(ctx context.Context, token string) (store.Channel, error) {
	if s.slow.Load() {
		s.clock.Advance(2 * time.Second)
	}
	return s.Store.ChannelByToken(ctx, token)
}

// Enqueue waits at the gate, if one is set: a request holds its in-flight
// slot from when its channel is found until the store has answered.
func (s *slowStore) Enqueue(ctx context.Context, q store.Queued, opts store.EnqueueOptions) (store.Queued, error) {
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		s.waiting.Add(1)
		select {
		case <-gate:
		case <-ctx.Done():
			return store.Queued{}, ctx.Err()
		}
	}
	return s.Store.Enqueue(ctx, q, opts)
}

// startWrapped serves a Server over a real loopback listener with its
// store wrapped by slowStore.
func startWrapped(t *testing.T, limits server.Limits) (*httptest.Server, *slowStore) {
	t.Helper()
	st := testenv.SQLiteStore(t, filepath.Join(t.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true})
	clk := clock.NewFake(epoch)
	slow := &slowStore{Store: st, clock: clk}
	hs := httptest.NewUnstartedServer(nil)
	srv, err := server.New(server.Config{Store: slow, PublicURL: "http://" + hs.Listener.Addr().String(), Clock: clk,
		Logger: testenv.Logger(t), Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		st.Close()
	})
	return hs, slow
}

func TestShedsLoadWhenTheStoreIsSlow(t *testing.T) {
	hs, slow := startWrapped(t, server.Limits{SlowStore: time.Second, ShedFor: 10 * time.Second, RetryAfter: 30 * time.Second})
	d := mustDial(t, hs.URL)
	ch := d.open("a", "")

	mustPost(t, nil, ch.URI)
	slow.slow.Store(true)
	// The slow call itself completes; the service then sheds.
	mustPost(t, nil, ch.URI)
	slow.slow.Store(false)
	r := postMPNS(t, nil, http.MethodPost, ch.URI, rawHeaders(), "x")
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "30" {
		t.Fatalf("after a slow store call: %d Retry-After %q (%s); want 503 with Retry-After 30", r.code, r.header.Get("Retry-After"), r.body)
	}
	slow.clock.Advance(10 * time.Second)
	mustPost(t, nil, ch.URI)
}

func TestBoundsRequestsInFlight(t *testing.T) {
	hs, slow := startWrapped(t, server.Limits{MaxInFlight: 2})
	d := mustDial(t, hs.URL)
	ch := d.open("a", "")

	gate := make(chan struct{})
	slow.mu.Lock()
	slow.gate = gate
	slow.mu.Unlock()
	results := make(chan answer, 2)
	for range 2 {
		go func() { results <- postMPNS(t, nil, http.MethodPost, ch.URI, rawHeaders(), "x") }()
	}
	testenv.Eventually(t, 10*time.Second, "two requests waiting on the store", func() bool { return slow.waiting.Load() == 2 })

	r := postMPNS(t, nil, http.MethodPost, ch.URI, rawHeaders(), "x")
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("third request in flight: %d Retry-After %q; want 503 with Retry-After", r.code, r.header.Get("Retry-After"))
	}
	slow.mu.Lock()
	slow.gate = nil
	slow.mu.Unlock()
	close(gate)
	for range 2 {
		if r := <-results; statusOf(r) != "200 Received" {
			t.Fatalf("held request: %s %s %v", statusOf(r), r.body, r.network)
		}
	}
	mustPost(t, nil, ch.URI)
}
