package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// Tokens of the channels the fuzzed Web Push handler knows.
const (
	fuzzWebPushToken    = "wpwpwpwpwpwpwpwpwpwpwpwpwpwpwpwp"
	fuzzRestrictedToken = "vapidvapidvapidvapidvapidvapidva"
)

// FuzzWebPush feeds headers and bodies that speak Web Push to the real
// handler through the accept pipeline. Whatever comes in, the answer is
// one of RFC 8030's, never MPNS's: 201 with a Location under the channel
// URI and a TTL, 429 and 503 with a Retry-After of whole seconds, 401 with
// WWW-Authenticate: vapid; and nothing panics.
//
// sel picks the channel: 0 an open one, 1 one restricted to an application
// server key, anything else a channel that does not exist.
func FuzzWebPush(f *testing.F) {
	ctx := context.Background()
	st := testenv.SQLiteStore(f, filepath.Join(f.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true})
	f.Cleanup(func() { st.Close() })
	if err := st.CreateDevice(ctx, store.Device{ID: "dev", SecretHash: []byte("h"), CreatedAt: epoch, LastSeen: epoch}); err != nil {
		f.Fatal(err)
	}
	_, pub, _ := vapidKeys(f)
	for _, c := range []store.Channel{
		{ID: "wp", DeviceID: "dev", App: "wp", Name: "main", Token: fuzzWebPushToken, CreatedAt: epoch},
		{ID: "vapid", DeviceID: "dev", App: "vapid", Name: "main", Token: fuzzRestrictedToken, VAPIDKey: pub, CreatedAt: epoch},
	} {
		if err := st.CreateChannel(ctx, c); err != nil {
			f.Fatal(err)
		}
	}
	const public = "https://push.example.com"
	srv, err := server.New(server.Config{Store: st, PublicURL: public, Clock: clock.NewFake(epoch),
		Logger: testenv.Logger(f), QueueDepth: 20,
		// A small daily quota, so that refusals for the channel come too.
		Limits: server.Limits{DailyQuota: 40, ChannelRate: -1, SenderRate: -1}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	h := srv.Handler()

	f.Add(byte(0), "TTL: 60\nContent-Encoding: aes128gcm", []byte("ciphertext"))
	f.Add(byte(0), "TTL: 0\nContent-Encoding: aes128gcm\nTopic: news\nUrgency: high", []byte("c"))
	f.Add(byte(0), "TTL: -1", []byte("c"))
	f.Add(byte(0), "TTL: 60\nX-WindowsPhone-Target: toast", []byte("c"))
	f.Add(byte(1), "TTL: 60\nContent-Encoding: aes128gcm", []byte("c"))
	f.Add(byte(1), "TTL: 60\nAuthorization: vapid t=a.b.c, k="+pub, []byte("c"))
	f.Add(byte(2), "TTL: 60", []byte("c"))
	f.Add(byte(0), "TTL: 60\nContent-Encoding: aes128gcm", bytes.Repeat([]byte("x"), 4097))

	f.Fuzz(func(t *testing.T, sel byte, headers string, body []byte) {
		token := "nonenonenonenonenonenonenonenone"
		switch sel {
		case 0:
			token = fuzzWebPushToken
		case 1:
			token = fuzzRestrictedToken
		}
		hdr := http.Header{}
		for _, line := range strings.Split(headers, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && k != "" && !strings.ContainsAny(k, " \t\r\n") {
				hdr.Add(k, strings.TrimSpace(v))
			}
		}
		hdr.Set("TTL", hdr.Get("TTL")) // always Web Push, if with an empty TTL
		req := (&http.Request{
			Method: http.MethodPost, URL: &url.URL{Path: server.ThrottledPath + token}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: hdr, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
			Host: "push.example.com", RemoteAddr: "192.0.2.7:4000",
		}).WithContext(ctx)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()

		code := res.StatusCode
		if !slices.Contains([]int{201, 400, 401, 403, 404, 410, 413, 429, 503}, code) {
			t.Fatalf("status %d is not one of RFC 8030's answers", code)
		}
		for _, name := range []string{mpns.HeaderNotificationStatus, mpns.HeaderSubscriptionStatus, mpns.HeaderDeviceConnectionStatus} {
			if v := res.Header.Get(name); v != "" {
				t.Fatalf("%d with MPNS's %s: %q", code, name, v)
			}
		}
		switch code {
		case 201:
			if !strings.HasPrefix(res.Header.Get("Location"), public+server.ThrottledPath+token+server.MessagesSegment) {
				t.Fatalf("201 with Location %q", res.Header.Get("Location"))
			}
			if _, err := strconv.Atoi(res.Header.Get("TTL")); err != nil {
				t.Fatalf("201 with TTL %q", res.Header.Get("TTL"))
			}
		case 429, 503:
			if n, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || n < 1 {
				t.Fatalf("%d with Retry-After %q", code, res.Header.Get("Retry-After"))
			}
		case 401:
			if res.Header.Get("WWW-Authenticate") != "vapid" {
				t.Fatalf("401 with WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
			}
		}
		if sel > 1 && code == 201 {
			t.Fatal("a channel that does not exist took a message")
		}
	})
}
