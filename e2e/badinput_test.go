package e2e

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// TestBadInput sends what a broken or hostile sender might, over real
// HTTP, and checks each gets MPNS's answer, none reaches the phone, and the
// service keeps serving.
func TestBadInput(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	yes := true
	ch, err := d.Client.Open(ctxFor(t, 10*time.Second), "demo", app.OpenRequest{Toast: &yes, Tile: &yes})
	if err != nil {
		t.Fatal(err)
	}
	unknown := svc.URL() + server.ThrottledPath + strings.Repeat("A", 32)
	oversized := bytes.Repeat([]byte("x"), 3073)
	const (
		expired = "Dropped/Expired/Disconnected"
		none    = "//"
	)

	tests := []struct {
		name       string
		uri        string
		req        mpnsRequest
		wantStatus int
		wantHdrs   string // notification/subscription/device
	}{
		{"GET", ch.URI, mpnsRequest{method: http.MethodGet, messageID: "get"}, http.StatusMethodNotAllowed, none},
		{"PUT", ch.URI, mpnsRequest{method: http.MethodPut, target: "toast", class: "2", messageID: "put", body: []byte(toastHello)},
			http.StatusMethodNotAllowed, none},
		{"DELETE", ch.URI, mpnsRequest{method: http.MethodDelete, messageID: "delete"}, http.StatusMethodNotAllowed, none},
		{"raw of 3073 bytes", ch.URI, mpnsRequest{class: "3", messageID: "big-raw", body: oversized}, http.StatusBadRequest, none},
		{"toast of 3073 bytes", ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "big-toast",
			body: toastXML("Big", strings.Repeat("y", 3073-len(toastXML("Big", ""))))}, http.StatusBadRequest, none},
		{"malformed toast XML", ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "malformed",
			body: []byte(xmlDecl + `<wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>Hi</wp:Toast>`)}, http.StatusBadRequest, none},
		{"malformed tile XML", ch.URI, mpnsRequest{target: "token", class: "1", messageID: "malformed-tile",
			body: []byte(`<wp:Notification xmlns:wp="WPNotification"><wp:Tile><wp:Count>1`)}, http.StatusBadRequest, none},
		{"toast target, tile class", ch.URI, mpnsRequest{target: "toast", class: "1", messageID: "mismatch-1", body: []byte(toastHello)},
			http.StatusBadRequest, none},
		{"tile target, raw class", ch.URI, mpnsRequest{target: "token", class: "13", messageID: "mismatch-2",
			body: tileXML(`<wp:Count>1</wp:Count>`)}, http.StatusBadRequest, none},
		{"no target, toast class", ch.URI, mpnsRequest{class: "2", messageID: "mismatch-3", body: []byte(toastHello)},
			http.StatusBadRequest, none},
		{"tile target, toast body", ch.URI, mpnsRequest{target: "token", class: "1", messageID: "mismatch-4", body: []byte(toastHello)},
			http.StatusBadRequest, none},
		{"unknown channel", unknown, mpnsRequest{target: "toast", class: "2", messageID: "unknown", body: []byte(toastHello)},
			http.StatusNotFound, expired},
		{"unknown raw channel", unknown, mpnsRequest{class: "3", messageID: "unknown-raw", body: []byte("x")},
			http.StatusNotFound, expired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := post(t, tt.uri, tt.req)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d (%q), want %d", r.status, r.body, tt.wantStatus)
			}
			if got := r.notification + "/" + r.subscription + "/" + r.device; got != tt.wantHdrs {
				t.Errorf("status headers %q, want %q", got, tt.wantHdrs)
			}
			if r.messageID != tt.req.messageID {
				t.Errorf("X-MessageID echoed as %q, want %q", r.messageID, tt.req.messageID)
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && r.allow != http.MethodPost {
				t.Errorf("Allow: %q, want POST", r.allow)
			}
		})
	}

	t.Run("still serving", func(t *testing.T) {
		// 3072 bytes is the limit itself, and allowed.
		mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: "limit-raw", body: oversized[:3072]})
		mustReceive(t, ch.URI, mpnsRequest{target: "toast", class: "2", messageID: "good", body: []byte(toastHello)})
		testenv.Eventually(t, 10*time.Second, "the good toast", func() bool {
			toasts, err := d.Client.Toasts(context.Background(), "demo")
			return err == nil && len(toasts) == 1
		})
		toasts, err := d.Client.Toasts(context.Background(), "demo")
		if err != nil {
			t.Fatal(err)
		}
		if len(toasts) != 1 || toasts[0].MessageID != "good" {
			t.Fatalf("toasts = %+v, want only the good one", toasts)
		}
		// The 3072-byte raw came first and was dropped (demo is not
		// running); nothing refused above reached the phone at all.
		waitCounter(t, d.Client, daemon.CountRawDropped, 1)
		st, err := d.Client.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.Counters[daemon.CountPayloadErrors] != 0 || st.Counters[daemon.CountTilesUpdated] != 0 {
			t.Fatalf("counters %v: a refused notification reached the phone", st.Counters)
		}
	})
}
