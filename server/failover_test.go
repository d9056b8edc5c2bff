package server_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// failingOverStore is slowStore that says whether its slow calls met a
// failover, as a cluster's store does while a leader is elected.
type failingOverStore struct {
	*slowStore
	failover atomic.Bool
	asked    atomic.Int64 // the longest d it was asked about, in ns
}

func (f *failingOverStore) FailingOver(d time.Duration) bool {
	if int64(d) > f.asked.Load() {
		f.asked.Store(int64(d))
	}
	return f.failover.Load()
}

// A store call slowed by a failover (a leader lost and re-elected, the
// call retried through it) does not make the service shed load: the
// cluster is whole again when it returns, and shedding then refused every
// sender for ShedFor more (a stream leader's loss cost 17 s of 503). A
// call slowed by anything else still does.
func TestFailoverDoesNotShed(t *testing.T) {
	for _, tt := range []struct {
		name     string
		failover bool
		want     int
	}{
		{"failover", true, http.StatusOK},
		{"load", false, http.StatusServiceUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := testenv.SQLiteStore(t, filepath.Join(t.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true})
			clk := clock.NewFake(epoch)
			fo := &failingOverStore{slowStore: &slowStore{Store: st, clock: clk}}
			fo.failover.Store(tt.failover)
			hs := httptest.NewUnstartedServer(nil)
			srv, err := server.New(server.Config{Store: fo, PublicURL: "http://" + hs.Listener.Addr().String(), Clock: clk,
				Logger: testenv.Logger(t), Limits: server.Limits{SlowStore: time.Second, ShedFor: 10 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			hs.Config.Handler = srv.Handler()
			hs.Start()
			t.Cleanup(func() { hs.Close(); srv.Close(); st.Close() })
			d := mustDial(t, hs.URL)
			ch := d.open("a", "")

			fo.slow.Store(true)
			mustPost(t, nil, ch.URI) // the slow call itself completes
			fo.slow.Store(false)
			if got := time.Duration(fo.asked.Load()); got < 2*time.Second {
				t.Fatalf("asked about a failover within %v; want the slow call's 2 s", got)
			}
			r := postMPNS(t, nil, http.MethodPost, ch.URI, rawHeaders(), "x")
			if r.code != tt.want {
				t.Fatalf("after a slow store call (failover %v): %d (%s); want %d", tt.failover, r.code, r.body, tt.want)
			}
		})
	}
}
