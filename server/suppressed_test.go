package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// TestSuppressedMatrix checks each Suppressed rule, and that what is
// suppressed is not queued.
func TestSuppressedMatrix(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	chID, uri := d.register("app", false, false)
	tests := []struct {
		name        string
		toast, tile bool
		pinned      []string
		power       string
		kind        mpns.Kind
		tileID      string
		want        string
	}{
		{"toast unbound", false, true, nil, "normal", mpns.KindToast, "", "Suppressed"},
		{"toast bound", true, false, nil, "normal", mpns.KindToast, "", "Received"},
		{"tile unbound", true, false, nil, "normal", mpns.KindTile, "", "Suppressed"},
		{"primary tile bound", false, true, nil, "normal", mpns.KindTile, "", "Received"},
		{"secondary tile not pinned", true, true, []string{"/Other.xaml"}, "normal", mpns.KindTile, "/Second.xaml", "Suppressed"},
		{"secondary tile pinned", true, true, []string{"/Second.xaml"}, "normal", mpns.KindTile, "/Second.xaml", "Received"},
		{"raw unbound", false, false, nil, "normal", mpns.KindRaw, "", "Received"},
		{"low power toast", true, true, nil, "low", mpns.KindToast, "", "Suppressed"},
		{"low power tile", true, true, nil, "low", mpns.KindTile, "", "Suppressed"},
		{"low power raw", true, true, nil, "low", mpns.KindRaw, "", "Received"},
		{"critical toast", true, true, nil, "critical", mpns.KindToast, "", "Suppressed"},
		{"critical tile", true, true, nil, "critical", mpns.KindTile, "", "Suppressed"},
		{"critical raw", true, true, nil, "critical", mpns.KindRaw, "", "Suppressed"},
	}
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.bind(chID, tt.toast, tt.tile, tt.pinned...)
			d.power(tt.power)
			before, err := ts.store.Pending(ctx, d.id, 0)
			if err != nil {
				t.Fatal(err)
			}
			body := []byte("raw")
			switch tt.kind {
			case mpns.KindToast:
				body = toastBody("x")
			case mpns.KindTile:
				body = tileBody(tt.tileID, set("Count", "1"))
			}
			id := fmt.Sprintf("msg-%d", i)
			got := post(t, uri, tt.kind, "", id, body)
			wantStatus(t, got, 200, tt.want, "Connected")
			if got.MessageID != id || got.Subscription != "Active" {
				t.Fatalf("X-MessageID %q, X-SubscriptionStatus %q", got.MessageID, got.Subscription)
			}
			if tt.want == "Received" {
				if ns := d.expectNotify(); len(ns) != 1 || ns[0].MessageID != id {
					t.Fatalf("delivered %v", messageIDs(ns))
				}
				return
			}
			d.barrier()
			after, err := ts.store.Pending(ctx, d.id, 0)
			if err != nil || len(after) != len(before) {
				t.Fatalf("suppressed notification queued: %d → %d (err %v)", len(before), len(after), err)
			}
		})
	}
}

// TestMessageIDEcho checks X-MessageID comes back on every outcome, and is
// not echoed when it is not a valid header value.
func TestMessageIDEcho(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("app", true, true)
	base := uri[:strings.LastIndex(uri, "/")+1]
	tests := []struct {
		name   string
		method string
		uri    string
		kind   mpns.Kind
		body   []byte
		code   int
	}{
		{"received", http.MethodPost, uri, mpns.KindToast, toastBody("x"), 200},
		{"bad payload", http.MethodPost, uri, mpns.KindToast, []byte("<nope"), 400},
		{"unknown channel", http.MethodPost, base + "nosuchchannel", mpns.KindToast, toastBody("x"), 404},
		{"wrong method", http.MethodGet, uri, mpns.KindToast, nil, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "uuid-" + strings.ReplaceAll(tt.name, " ", "-")
			req, _ := http.NewRequest(tt.method, tt.uri, strings.NewReader(string(tt.body)))
			req.Header.Set(mpns.HeaderTarget, tt.kind.Target())
			req.Header.Set(mpns.HeaderMessageID, id)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.code || resp.Header.Get(mpns.HeaderMessageID) != id {
				t.Fatalf("got %d with X-MessageID %q, want %d with %q", resp.StatusCode, resp.Header.Get(mpns.HeaderMessageID), tt.code, id)
			}
		})
	}
	long := strings.Repeat("x", 65)
	if got := post(t, uri, mpns.KindToast, "", long, toastBody("x")); got.Code != 400 || got.MessageID != "" {
		t.Fatalf("over-long X-MessageID: %d, echoed %q", got.Code, got.MessageID)
	}
}
