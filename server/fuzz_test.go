package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	pathpkg "path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// Tokens of the channels the fuzzed handler knows.
const (
	fuzzRawToken   = "rawrawrawrawrawrawrawrawrawrawra"
	fuzzToastToken = "toasttoasttoasttoasttoasttoastto"
	fuzzAuthToken  = "authauthauthauthauthauthauthauth"
)

// FuzzHandler feeds method, path, headers and body to the real handler of
// a service with a real store. Whatever comes in, the answer is one of
// MPNS's statuses with well-formed status headers, and nothing panics.
//
// sel picks the path: 0 a raw-only channel, 1 a toast-bound channel,
// 2 an authenticated channel, 3 the multicast endpoint (the body becomes
// the payload unless it is JSON already), anything else the path as given.
func FuzzHandler(f *testing.F) {
	ctx := context.Background()
	st := testenv.SQLiteStore(f, filepath.Join(f.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true})
	f.Cleanup(func() { st.Close() })
	clk := clock.NewFake(epoch)
	if err := st.CreateDevice(ctx, store.Device{ID: "dev", SecretHash: []byte("h"), CreatedAt: epoch, LastSeen: epoch}); err != nil {
		f.Fatal(err)
	}
	for _, c := range []store.Channel{
		{ID: "raw", DeviceID: "dev", App: "raw", Name: "main", Token: fuzzRawToken, CreatedAt: epoch},
		{ID: "toast", DeviceID: "dev", App: "toast", Name: "main", Token: fuzzToastToken, Toast: true, Tile: true, Pinned: []string{"/P.xaml"}, CreatedAt: epoch},
		{ID: "auth", DeviceID: "dev", App: "auth", Name: "main", Token: fuzzAuthToken, ServiceName: "contoso", CreatedAt: epoch},
	} {
		if err := st.CreateChannel(ctx, c); err != nil {
			f.Fatal(err)
		}
	}
	srv, err := server.New(server.Config{Store: st, PublicURL: "http://push.example.com", AuthURL: "https://push.example.com",
		Clock: clk, Logger: testenv.Logger(f), QueueDepth: 50,
		// Quotas off, so that inputs reach the queue.
		Limits: server.Limits{DailyQuota: -1, ChannelRate: -1, SenderRate: -1}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	h := srv.Handler()

	seeds := []struct {
		method  string
		sel     byte
		path    string
		headers string
		body    string
	}{
		{"POST", 0, "", "X-NotificationClass: 3\nX-MessageID: m-1", `{"sync":true}`},
		{"POST", 0, "", "X-WindowsPhone-Target: raw", "x"},
		{"POST", 1, "", "X-WindowsPhone-Target: toast\nX-NotificationClass: 22\nContent-Type: text/xml", toastXML},
		{"POST", 1, "", "x-windowsphone-target: Tile\nx-notificationclass: 11", tileXML},
		{"POST", 1, "", "X-WindowsPhone-Target: toast", `<!DOCTYPE n [<!ENTITY x "y">]><wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>&x;</wp:Text1></wp:Toast></wp:Notification>`},
		{"POST", 2, "", "X-NotificationClass: 3", "x"},
		{"POST", 3, "", "X-WindowsPhone-Target: toast", toastXML},
		{"POST", 3, "", "X-NotificationClass: 3", `{"channels":["http://h/throttledthirdparty/01.00/` + fuzzRawToken + `","::"],"payload_base64":"AAE="}`},
		{"GET", 0, "", "", ""},
		{"POST", 9, "/throttledthirdparty/01.00/../device", "", "x"},
		{"PUT", 9, "/unthrottledthirdparty/01.00/", "X-MessageID: a\rb", ""},
		{"POST", 0, "", "X-Padding: " + strings.Repeat("p", 1100), "x"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.sel, s.path, s.headers, []byte(s.body))
	}

	statuses := []int{200, 400, 401, 403, 404, 405, 406, 412, 503}
	f.Fuzz(func(t *testing.T, method string, sel byte, path, headers string, body []byte) {
		var p string
		switch sel {
		case 0:
			p = server.ThrottledPath + fuzzRawToken
		case 1:
			p = server.ThrottledPath + fuzzToastToken
		case 2:
			p = server.UnthrottledPath + fuzzAuthToken
		case 3:
			p = server.MulticastPath
			if !json.Valid(body) {
				body, _ = json.Marshal(server.MulticastRequest{Channels: []string{
					"http://h" + server.ThrottledPath + fuzzRawToken, "http://h" + server.ThrottledPath + fuzzToastToken,
					"https://h" + server.UnthrottledPath + fuzzAuthToken, "http://h/" + path}, Payload: string(body)})
			}
		default:
			p = "/" + strings.TrimPrefix(path, "/")
		}
		hdr := http.Header{}
		for _, line := range strings.Split(headers, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && k != "" && !strings.ContainsAny(k, " \t\r\n") {
				hdr.Add(k, strings.TrimSpace(v))
			}
		}
		if method == "" {
			method = http.MethodPost
		}
		req := (&http.Request{
			Method: method, URL: &url.URL{Path: p}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: hdr, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)),
			Host: "push.example.com", RemoteAddr: "192.0.2.7:4000",
		}).WithContext(ctx)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		res := rec.Result()

		// Unclean paths (/a/../b) are answered 404 before any handler,
		// never redirected to the cleaned path.
		clean := pathpkg.Clean(p) == p || pathpkg.Clean(p)+"/" == p
		if !clean && (res.StatusCode != http.StatusNotFound || res.Header.Get("Location") != "") {
			t.Fatalf("%s %s: %d Location %q, want 404 and no redirect", method, p, res.StatusCode, res.Header.Get("Location"))
		}
		onChannel := clean && (sel <= 3 || strings.HasPrefix(p, server.ThrottledPath) || strings.HasPrefix(p, server.UnthrottledPath))
		if onChannel && !slices.Contains(statuses, res.StatusCode) {
			t.Fatalf("%s %s: status %d is not an MPNS status", method, p, res.StatusCode)
		}
		checkTokens(t, res.Header)
		if res.StatusCode == 200 && sel <= 2 {
			switch res.Header.Get(mpns.HeaderNotificationStatus) {
			case mpns.StatusReceived, mpns.StatusSuppressed, mpns.StatusQueueFull:
			default:
				t.Fatalf("200 with notification status %q", res.Header.Get(mpns.HeaderNotificationStatus))
			}
		}
		if sel == 3 && res.StatusCode == 200 {
			var mr server.MulticastResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &mr); err != nil || len(mr.Results) == 0 {
				t.Fatalf("multicast answered 200 with %q (%v)", rec.Body.String(), err)
			}
			for _, r := range mr.Results {
				if !slices.Contains(statuses, r.Status) {
					t.Fatalf("multicast result status %d", r.Status)
				}
			}
		}
		if id := res.Header.Get(mpns.HeaderMessageID); id != "" && id != hdr.Get(mpns.HeaderMessageID) && !headerHasValue(hdr, mpns.HeaderMessageID, id) {
			t.Fatalf("echoed X-MessageID %q that was not sent", id)
		}
	})
}

func headerHasValue(h http.Header, name, v string) bool {
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 && vs[0] == v {
			return true
		}
	}
	return false
}

// checkTokens fails unless every MPNS status header holds one of MPNS's
// exact tokens.
func checkTokens(t *testing.T, h http.Header) {
	t.Helper()
	valid := map[string][]string{
		mpns.HeaderNotificationStatus:     {mpns.StatusReceived, mpns.StatusDropped, mpns.StatusQueueFull, mpns.StatusSuppressed},
		mpns.HeaderSubscriptionStatus:     {mpns.SubscriptionActive, mpns.SubscriptionExpired},
		mpns.HeaderDeviceConnectionStatus: {mpns.DeviceConnected, mpns.DeviceTempDisconnected, mpns.DeviceInactive, mpns.DeviceDisconnected},
	}
	for name, tokens := range valid {
		if v, ok := h[http.CanonicalHeaderKey(name)]; ok && (len(v) != 1 || !slices.Contains(tokens, v[0])) {
			t.Fatalf("%s: %q", name, v)
		}
	}
}
