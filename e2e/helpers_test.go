// Package e2e tests Herald's whole path, every part real: a cloud service
// POSTs MPNS notifications to channel URIs over loopback HTTP, heraldsvc
// routes them over the device's websocket, and the herald daemon dispatches
// them to apps on its local socket.
package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/internal/testenv"
)

// Payloads written out by hand, the way cloud services built them from the
// MPNS documentation's samples.
const (
	xmlDecl    = `<?xml version="1.0" encoding="utf-8"?>`
	toastHello = xmlDecl + `<wp:Notification xmlns:wp="WPNotification"><wp:Toast>` +
		`<wp:Text1>Hello</wp:Text1><wp:Text2>from the cloud</wp:Text2><wp:Param>/Inbox.xaml?id=7</wp:Param>` +
		`</wp:Toast></wp:Notification>`
)

func toastXML(text1, text2 string) []byte {
	return []byte(xmlDecl + `<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>` + text1 +
		`</wp:Text1><wp:Text2>` + text2 + `</wp:Text2></wp:Toast></wp:Notification>`)
}

func tileXML(inner string) []byte {
	return []byte(xmlDecl + `<wp:Notification xmlns:wp="WPNotification"><wp:Tile>` + inner + `</wp:Tile></wp:Notification>`)
}

// mpnsRequest is one request as a cloud service sends it.
type mpnsRequest struct {
	method    string // default POST
	target    string // X-WindowsPhone-Target; "" sends none (raw)
	class     string // X-NotificationClass; "" sends none
	messageID string // X-MessageID; "" sends none
	body      []byte
}

// mpnsResponse is what the service answered.
type mpnsResponse struct {
	status       int
	notification string // X-NotificationStatus
	subscription string // X-SubscriptionStatus
	device       string // X-DeviceConnectionStatus
	messageID    string // X-MessageID echoed
	allow        string
	retryAfter   string
	body         string
}

func (r mpnsResponse) received() bool {
	return r.status == http.StatusOK && r.notification == "Received" && r.subscription == "Active" && r.device == "Connected"
}

// senderClient sends without keep-alive, so a restarted service is never
// reached over a connection the old one accepted.
var senderClient = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// post sends req to uri with the headers MPNS sender libraries put on every
// request: Content-Type text/xml (raw too) and Accept application/*.
func post(t testing.TB, uri string, req mpnsRequest) mpnsResponse {
	t.Helper()
	method := req.method
	if method == "" {
		method = http.MethodPost
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequest(method, uri, body)
	if err != nil {
		t.Fatalf("building request: %v", err)
	}
	hr.Header.Set("Content-Type", "text/xml")
	hr.Header.Set("Accept", "application/*")
	if req.target != "" {
		hr.Header.Set("X-WindowsPhone-Target", req.target)
	}
	if req.class != "" {
		hr.Header.Set("X-NotificationClass", req.class)
	}
	if req.messageID != "" {
		hr.Header.Set("X-MessageID", req.messageID)
	}
	resp, err := senderClient.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, uri, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return mpnsResponse{
		status:       resp.StatusCode,
		notification: resp.Header.Get("X-NotificationStatus"),
		subscription: resp.Header.Get("X-SubscriptionStatus"),
		device:       resp.Header.Get("X-DeviceConnectionStatus"),
		messageID:    resp.Header.Get("X-MessageID"),
		allow:        resp.Header.Get("Allow"),
		retryAfter:   resp.Header.Get("Retry-After"),
		body:         string(b),
	}
}

// mustReceive posts req and fails unless the service answered 200
// Received/Active/Connected and echoed the message id.
func mustReceive(t testing.TB, uri string, req mpnsRequest) {
	t.Helper()
	r := post(t, uri, req)
	if !r.received() {
		t.Fatalf("POST %s: got %d %s/%s/%s (%q), want 200 Received/Active/Connected", req.target, r.status,
			r.notification, r.subscription, r.device, r.body)
	}
	if r.messageID != req.messageID {
		t.Fatalf("X-MessageID echoed as %q, want %q", r.messageID, req.messageID)
	}
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// nextEvent returns the stream's next event of type typ, skipping
// connection-status events.
func nextEvent(t testing.TB, s *app.Stream, typ string) app.Event {
	t.Helper()
	for {
		e, err := s.Next(ctxFor(t, 10*time.Second))
		if err != nil {
			t.Fatalf("waiting for a %s event: %v", typ, err)
		}
		if e.Type == app.EventStatus && typ != app.EventStatus {
			continue
		}
		if e.Type != typ {
			t.Fatalf("got a %s event (%+v), want %s", e.Type, e, typ)
		}
		return e
	}
}

// waitCounter waits until the daemon's counter reaches want.
func waitCounter(t testing.TB, c *app.Client, name string, want int64) {
	t.Helper()
	var got int64
	testenv.Eventually(t, 10*time.Second, name+" counter", func() bool {
		st, err := c.Status(context.Background())
		if err != nil {
			return false
		}
		got = st.Counters[name]
		return got >= want
	})
	if got != want {
		t.Fatalf("counter %s = %d, want %d", name, got, want)
	}
}

// waitNotRunning waits until the daemon no longer counts appID as running.
func waitNotRunning(t testing.TB, c *app.Client, appID string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, appID+" stopped", func() bool {
		st, err := c.Status(context.Background())
		return err == nil && !slices.Contains(st.Running, appID)
	})
}
