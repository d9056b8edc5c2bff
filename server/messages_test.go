package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

type statusAnswer struct {
	Code    int
	ID      string `json:"id"`
	Status  string `json:"status"`
	Urgency string `json:"urgency"`
	Held    bool   `json:"held"`
	Message string `json:"message"`
}

func askStatus(t *testing.T, method, uri string) statusAnswer {
	t.Helper()
	req, err := http.NewRequest(method, uri, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := statusAnswer{Code: resp.StatusCode}
	if resp.StatusCode != http.StatusNoContent && method != http.MethodHead {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s: Content-Type %q", method, uri, ct)
		}
		if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
			t.Fatalf("%s %s: %v", method, uri, err)
		}
	}
	return a
}

func wantAnswer(t *testing.T, got statusAnswer, code int, status string) {
	t.Helper()
	if got.Code != code || got.Status != status {
		t.Fatalf("got %d %q (%s), want %d %q", got.Code, got.Status, got.Message, code, status)
	}
}

// A sender follows its MPNS notification by its X-MessageID: queued while
// the device is away, delivered once the device acknowledged it.
func TestMessageStatusQueuedThenDelivered(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("app", false, false)
	d.disconnect()
	wantStatus(t, post(t, uri, mpns.KindRaw, "", "m-1", []byte("hello")), 200, "Received", "TempDisconnected")
	res := server.MessageURI(uri, "m-1")
	got := askStatus(t, http.MethodGet, res)
	wantAnswer(t, got, http.StatusOK, "queued")
	if got.ID != "m-1" || got.Urgency != "high" {
		t.Fatalf("queued answer %+v: want id m-1 and urgency high (MPNS is never held)", got)
	}
	wantAnswer(t, askStatus(t, http.MethodGet, server.MessageURI(uri, "m-2")), http.StatusNotFound, "unknown")

	d.connect(0)
	n := d.collect(1)
	d.ack(n[0].Seq)
	waitQueueEmpty(t, ts, d.id)
	testenv.Eventually(t, frameWait, "delivered", func() bool { return askStatus(t, http.MethodGet, res).Status == "delivered" })
	// Too late to cancel.
	wantAnswer(t, askStatus(t, http.MethodDelete, res), http.StatusGone, "delivered")
}

// DELETE takes a queued notification out before the device gets it; the
// device then never sees it, and the resource says cancelled.
func TestMessageCancel(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("app", false, false)
	d.disconnect()
	wantStatus(t, post(t, uri, mpns.KindRaw, "", "drop-me", []byte("x")), 200, "Received", "TempDisconnected")
	wantStatus(t, post(t, uri, mpns.KindRaw, "", "keep-me", []byte("y")), 200, "Received", "TempDisconnected")
	res := server.MessageURI(uri, "drop-me")
	wantAnswer(t, askStatus(t, http.MethodDelete, res), http.StatusNoContent, "")
	wantAnswer(t, askStatus(t, http.MethodGet, res), http.StatusGone, "cancelled")
	wantAnswer(t, askStatus(t, http.MethodDelete, res), http.StatusGone, "cancelled")
	wantAnswer(t, askStatus(t, http.MethodDelete, server.MessageURI(uri, "never")), http.StatusNotFound, "unknown")

	d.connect(0)
	n := d.collect(1)
	if n[0].MessageID != "keep-me" {
		t.Fatalf("the device got %q, want only keep-me", n[0].MessageID)
	}
	// Written, not acknowledged: it may be applied, so it is no longer
	// the sender's to cancel.
	wantAnswer(t, askStatus(t, http.MethodDelete, server.MessageURI(uri, "keep-me")), http.StatusConflict, "queued")
}

// A cancel while the device is connected and the notification waits for
// its class's deadline takes it out of the session's copy of the queue
// too: it is never written.
func TestMessageCancelWhileConnected(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("app", false, false)
	// Class 13: raw, within 450 s.
	wantStatus(t, post(t, uri, mpns.KindRaw, "13", "later", []byte("x")), 200, "Received", "Connected")
	ts.waitTimer(t0.Add(mpns.Within450s.Duration()))
	wantAnswer(t, askStatus(t, http.MethodDelete, server.MessageURI(uri, "later")), http.StatusNoContent, "")
	wantStatus(t, post(t, uri, mpns.KindRaw, "", "now", []byte("y")), 200, "Received", "Connected")
	n := d.collect(1)
	if len(n) != 1 || n[0].MessageID != "now" {
		t.Fatalf("the device got %v, want only now", messageIDs(n))
	}
}

// Hostile requests on message resources: wrong methods, made-up tokens,
// ids that cannot be message ids, another channel's messages.
func TestMessageResourceAttacks(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("app", false, false)
	_, other := d.register("other", false, false)
	d.disconnect()
	wantStatus(t, post(t, uri, mpns.KindRaw, "", "mine", []byte("x")), 200, "Received", "TempDisconnected")
	base := ts.http.URL + server.ThrottledPath
	for _, c := range []struct {
		name, method, uri string
		code              int
	}{
		{"another channel's message", http.MethodGet, server.MessageURI(other, "mine"), http.StatusNotFound},
		{"cancel through another channel", http.MethodDelete, server.MessageURI(other, "mine"), http.StatusNotFound},
		{"made-up token", http.MethodGet, server.MessageURI(base+"AAAAAAAAAAAAAAAAAAAAAA", "mine"), http.StatusNotFound},
		{"no token", http.MethodGet, base + "messages/mine", http.StatusNotFound},
		{"id too long", http.MethodGet, server.MessageURI(uri, strings.Repeat("a", mpns.MaxMessageIDLength+1)), http.StatusNotFound},
		{"empty id", http.MethodGet, uri + server.MessagesSegment, http.StatusNotFound},
		{"id with a slash", http.MethodGet, server.MessageURI(uri, "a%2Fb"), http.StatusNotFound},
		{"id with a control character", http.MethodGet, server.MessageURI(uri, "a%00b"), http.StatusNotFound},
		{"PUT", http.MethodPut, server.MessageURI(uri, "mine"), http.StatusMethodNotAllowed},
		{"POST", http.MethodPost, server.MessageURI(uri, "mine"), http.StatusMethodNotAllowed},
		{"authenticated path for a plain channel", http.MethodGet,
			strings.Replace(server.MessageURI(uri, "mine"), server.ThrottledPath, server.UnthrottledPath, 1), http.StatusNotFound},
	} {
		if got := askStatus(t, c.method, c.uri); got.Code != c.code {
			t.Errorf("%s: %d %+v, want %d", c.name, got.Code, got, c.code)
		}
	}
	// Still queued, whatever was tried.
	wantAnswer(t, askStatus(t, http.MethodGet, server.MessageURI(uri, "mine")), http.StatusOK, "queued")
}

// A low-urgency message waits behind a device on low battery, while an
// urgent one passes it; it goes when the device is back on power. The
// device's cumulative ack of the urgent one does not take it.
func TestUrgencyHeldBehindLowBattery(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	chID, uri := d.register("app", false, false)
	setState := func(power, urgency string) {
		t.Helper()
		d.req++
		d.send(wire.State{Type: wire.TypeState, ReqID: d.req, Power: power, Urgency: urgency})
	}
	// A barrier that keeps the state: the writer has looked at the queue
	// once the second answer comes.
	barrier := func() {
		t.Helper()
		setState("low", "high")
		d.expectResult()
		setState("low", "high")
		d.expectResult()
	}
	barrier()
	ctx := context.Background()
	// What the Web Push front end stores for an Urgency: low message.
	low, err := ts.store.Enqueue(ctx, store.Queued{DeviceID: d.id, ChannelID: chID, Kind: string(mpns.KindRaw), MessageID: "advert",
		Body: []byte("low"), AcceptedAt: t0, DueAt: t0, Urgency: int(mpns.UrgencyLow)}, store.EnqueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	barrier()
	if got := askStatus(t, http.MethodGet, server.MessageURI(uri, "advert")); got.Status != "queued" || !got.Held || got.Urgency != "low" {
		t.Fatalf("held message's status: %+v", got)
	}
	wantStatus(t, post(t, uri, mpns.KindRaw, "", "call", []byte("ring")), 200, "Received", "Connected")
	n := d.collect(1)
	if n[0].MessageID != "call" || n[0].Seq <= low.Seq {
		t.Fatalf("got %+v, want the call, numbered above %d", n[0], low.Seq)
	}
	d.ack(n[0].Seq)
	barrier()
	testenv.Eventually(t, frameWait, "the call's ack applied", func() bool {
		qs, err := ts.store.Pending(ctx, d.id, 0)
		return err == nil && len(qs) == 1
	})
	qs, err := ts.store.Pending(ctx, d.id, 0)
	if err != nil || len(qs) != 1 || qs[0].MessageID != "advert" || qs[0].Seq <= n[0].Seq {
		t.Fatalf("after the ack the queue holds %+v (%v); want the advert, above %d", qs, err, n[0].Seq)
	}
	// On power again: everything goes.
	setState("normal", "very-low")
	var got []wire.Notification
	for len(got) == 0 {
		switch f := d.next().(type) {
		case *wire.Notify:
			got = f.Notifications
		case *wire.Result:
		default:
			t.Fatalf("unexpected frame %T", f)
		}
	}
	if len(got) != 1 || got[0].MessageID != "advert" || string(got[0].Body) != "low" {
		t.Fatalf("after power returned: %+v", got)
	}
	d.ack(got[0].Seq)
	waitQueueEmpty(t, ts, d.id)
	testenv.Eventually(t, frameWait, "advert delivered", func() bool {
		return askStatus(t, http.MethodGet, server.MessageURI(uri, "advert")).Status == "delivered"
	})
}

// An authenticated channel's message resources ask for the certificate of
// the channel's own service, as its URI does.
func TestMessageResourceOfAuthenticatedChannel(t *testing.T) {
	e := startEnv(t, server.ServeConfig{})
	d := mustDial(t, e.svc.URL())
	ch := d.open("bank", "contoso")
	r := postMPNS(t, e.pki.client(t, "contoso"), http.MethodPost, ch.URI, mpnsHeaders("", "3", "pay-1"), "raw")
	if r.code != 200 {
		t.Fatalf("post: %d %s", r.code, r.body)
	}
	res := server.MessageURI(ch.URI, "pay-1")
	for _, c := range []struct {
		name   string
		client *http.Client
		code   int
	}{
		{"no certificate", e.pki.client(t, ""), http.StatusUnauthorized},
		{"another service", e.pki.client(t, "fabrikam"), http.StatusForbidden},
		{"the channel's service", e.pki.client(t, "contoso"), http.StatusOK},
	} {
		for _, method := range []string{http.MethodGet, http.MethodDelete} {
			if method == http.MethodDelete && c.code == http.StatusOK {
				continue
			}
			got := postMPNS(t, c.client, method, res, nil, "")
			if got.network != nil || got.code != c.code {
				t.Errorf("%s %s: %d %s %v, want %d", c.name, method, got.code, got.body, got.network, c.code)
			}
		}
	}
	// Nobody without the certificate cancelled it.
	if got := postMPNS(t, e.pki.client(t, "contoso"), http.MethodGet, res, nil, ""); !strings.Contains(got.body, `"queued"`) &&
		!strings.Contains(got.body, `"delivered"`) {
		t.Fatalf("after the refused requests: %d %s", got.code, got.body)
	}
}

// A Web Push POST's Urgency header is what the service holds by: a low
// one waits behind a device that takes normal and above (on battery, off
// Wi-Fi), its Location says held, and it goes once the device's minimum
// drops.
func TestWebPushUrgencyHeaderHeld(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("app", false, false)
	d.req++
	d.send(wire.State{Type: wire.TypeState, ReqID: d.req, Power: "normal", Urgency: "normal"})
	d.expectResult()
	res := wpPost(t, uri, wpHeader("TTL", "600", "Urgency", "low"), []byte("advert"))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("Web Push POST: %d", res.StatusCode)
	}
	loc := res.Header.Get("Location")
	if got := askStatus(t, http.MethodGet, loc); got.Status != "queued" || !got.Held || got.Urgency != "low" {
		t.Fatalf("status of a low-urgency message on low battery: %+v", got)
	}
	d.req++
	d.send(wire.State{Type: wire.TypeState, ReqID: d.req, Power: "normal", Urgency: "very-low"})
	var got []wire.Notification
	for len(got) == 0 {
		switch f := d.next().(type) {
		case *wire.Notify:
			got = f.Notifications
		case *wire.Result:
		default:
			t.Fatalf("unexpected frame %T", f)
		}
	}
	if len(got) != 1 || string(got[0].Body) != "advert" || got[0].Kind != string(mpns.KindWebPush) {
		t.Fatalf("after power returned: %+v", got)
	}
}
