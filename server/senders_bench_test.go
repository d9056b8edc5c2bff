package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// benchHandler is a service with one raw channel, called in-process so the
// figures are the handler's and the store's, not the network's.
func benchHandler(b *testing.B, limits server.Limits) http.Handler {
	b.Helper()
	ctx := context.Background()
	st := testenv.SQLiteStore(b, filepath.Join(b.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true})
	b.Cleanup(func() { st.Close() })
	if err := st.CreateDevice(ctx, store.Device{ID: "dev", SecretHash: []byte("h"), CreatedAt: epoch, LastSeen: epoch}); err != nil {
		b.Fatal(err)
	}
	if err := st.CreateChannel(ctx, store.Channel{ID: "raw", DeviceID: "dev", App: "raw", Name: "main", Token: fuzzRawToken, CreatedAt: epoch}); err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(server.Config{Store: st, PublicURL: "http://push.example.com", Clock: clock.NewFake(epoch),
		Logger: testenv.Logger(b), QueueDepth: 1 << 30, Limits: limits})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	return srv.Handler()
}

func benchPost(b *testing.B, h http.Handler, want int) {
	// Many senders at once, as in production, so group commit can batch.
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, server.ThrottledPath+fuzzRawToken, io.NopCloser(bytes.NewReader([]byte(`{"sync":true}`))))
			req.Header = rawHeaders()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != want {
				b.Fatalf("status %d, want %d: %s", rec.Code, want, rec.Body)
			}
		}
	})
}

// BenchmarkNotifyReceived is the whole accepted path: checks, lookups and
// a group-committed enqueue.
func BenchmarkNotifyReceived(b *testing.B) {
	benchPost(b, benchHandler(b, server.Limits{DailyQuota: -1, ChannelRate: -1, SenderRate: -1}), http.StatusOK)
}

// BenchmarkNotifyOverQuota is a flood against a channel whose daily quota
// is used up: what refusing costs.
func BenchmarkNotifyOverQuota(b *testing.B) {
	h := benchHandler(b, server.Limits{DailyQuota: 1, ChannelRate: -1, SenderRate: -1})
	req := httptest.NewRequest(http.MethodPost, server.ThrottledPath+fuzzRawToken, bytes.NewReader([]byte("x")))
	req.Header = rawHeaders()
	h.ServeHTTP(httptest.NewRecorder(), req) // uses up the quota
	b.ResetTimer()
	benchPost(b, h, http.StatusNotAcceptable)
}

// BenchmarkNotifySenderLimited is a flood from one address past its rate:
// refused before the body is read or the store is asked.
func BenchmarkNotifySenderLimited(b *testing.B) {
	h := benchHandler(b, server.Limits{SenderRate: 0.001, SenderBurst: 1})
	req := httptest.NewRequest(http.MethodPost, server.ThrottledPath+fuzzRawToken, bytes.NewReader([]byte("x")))
	req.Header = rawHeaders()
	h.ServeHTTP(httptest.NewRecorder(), req) // uses up the burst
	b.ResetTimer()
	benchPost(b, h, http.StatusNotAcceptable)
}
