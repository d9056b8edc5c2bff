package server

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/mpns"
)

// answer is a rendered refusal: status and every header.
type answer struct {
	code   int
	header map[string]string
}

func (a answer) String() string {
	keys := slices.Sorted(maps.Keys(a.header))
	var b strings.Builder
	fmt.Fprintf(&b, "%d", a.code)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%q", k, a.header[k])
	}
	return b.String()
}

func recorded(rec *httptest.ResponseRecorder) answer {
	a := answer{code: rec.Code, header: map[string]string{}}
	for k, v := range rec.Header() {
		a.header[k] = strings.Join(v, ",")
	}
	return a
}

// TestRefusalCatalogue is the golden table: every refusal, rendered by
// every sender protocol, to its exact status and headers.
func TestRefusalCatalogue(t *testing.T) {
	now := time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)
	const text = "text/plain; charset=utf-8"
	const jsonType = "application/json"
	created := webPushAnswer{code: http.StatusCreated, location: "https://push.example.com/c/tok/messages/m1", ttl: 60}

	cases := []struct {
		r         *senderRefusal
		mpns      answer
		multicast MulticastResult
		webPush   answer
		matrix    answer
		pushkey   pushkeyVerdict
		resource  int
	}{{
		r: refuse(refNoChannel, "no such channel"),
		mpns: answer{404, map[string]string{"X-Notificationstatus": "Dropped", "X-Subscriptionstatus": "Expired",
			"X-Deviceconnectionstatus": "Disconnected", "X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 404, Notification: "Dropped", Subscription: "Expired", Device: "Disconnected", Error: "no such channel"},
		webPush:   answer{404, map[string]string{"Content-Type": text}},
		matrix:    answer{404, map[string]string{"Content-Type": jsonType}},
		pushkey:   pushkeyRejected, resource: 404,
	}, {
		r:         refuse(refMalformed, "bad"),
		mpns:      answer{400, map[string]string{"X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 400, Error: "bad"},
		webPush:   answer{400, map[string]string{"Content-Type": text}},
		matrix:    answer{400, map[string]string{"Content-Type": jsonType}},
		pushkey:   pushkeyKept, resource: 400,
	}, {
		r:         refuse(refTooLarge, "big"),
		mpns:      answer{400, map[string]string{"X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 400, Error: "big"},
		webPush:   answer{413, map[string]string{"Content-Type": text}},
		matrix:    answer{413, map[string]string{"Content-Type": jsonType}},
		pushkey:   pushkeyKept, resource: 400,
	}, {
		r:         refuse(refUnauthenticated, "who"),
		mpns:      answer{401, map[string]string{"X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 401, Error: "who"},
		webPush:   answer{401, map[string]string{"Www-Authenticate": "vapid", "Content-Type": text}},
		matrix:    answer{401, map[string]string{"Content-Type": jsonType}},
		pushkey:   pushkeyRejected, resource: 401,
	}, {
		r:         refuse(refForbidden, "not yours"),
		mpns:      answer{403, map[string]string{"X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 403, Error: "not yours"},
		webPush:   answer{403, map[string]string{"Content-Type": text}},
		matrix:    answer{403, map[string]string{"Content-Type": jsonType}},
		pushkey:   pushkeyRejected, resource: 403,
	}, {
		// The sender's rate: the device was not looked at.
		r: &senderRefusal{kind: refRateLimited, retryAfter: time.Second, reason: "more than 1000 notifications per second from this address"},
		mpns: answer{406, map[string]string{"X-Notificationstatus": "Dropped", "X-Subscriptionstatus": "Active",
			"X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 406, Notification: "Dropped", Subscription: "Active", Error: "more than 1000 notifications per second from this address"},
		webPush:   answer{429, map[string]string{"Retry-After": "1", "Content-Type": text}},
		matrix:    answer{429, map[string]string{"Retry-After": "1", "Content-Type": jsonType}},
		pushkey:   pushkeyKept, resource: 429,
	}, {
		r: &senderRefusal{kind: refRateLimited, retryAfter: time.Second, device: mpns.DeviceConnected, reason: "channel rate"},
		mpns: answer{406, map[string]string{"X-Notificationstatus": "Dropped", "X-Subscriptionstatus": "Active",
			"X-Deviceconnectionstatus": "Connected", "X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 406, Notification: "Dropped", Subscription: "Active", Device: "Connected", Error: "channel rate"},
		webPush:   answer{429, map[string]string{"Retry-After": "1", "Content-Type": text}},
		matrix:    answer{429, map[string]string{"Retry-After": "1", "Content-Type": jsonType}},
		pushkey:   pushkeyKept, resource: 429,
	}, {
		// A minute to UTC midnight: retry then, not every second. Its
		// text says "per second" to show it is never read.
		r: func() *senderRefusal {
			r := quotaRefusal(500, now)
			r.device, r.reason = mpns.DeviceTempDisconnected, "quota, not 50 per second"
			return r
		}(),
		mpns: answer{406, map[string]string{"X-Notificationstatus": "Dropped", "X-Subscriptionstatus": "Active",
			"X-Deviceconnectionstatus": "TempDisconnected", "X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 406, Notification: "Dropped", Subscription: "Active", Device: "TempDisconnected", Error: "quota, not 50 per second"},
		webPush:   answer{429, map[string]string{"Retry-After": "61", "Content-Type": text}},
		matrix:    answer{429, map[string]string{"Retry-After": "61", "Content-Type": jsonType}},
		pushkey:   pushkeyKept, resource: 429,
	}, {
		r: &senderRefusal{kind: refQueueFull, retryAfter: time.Minute, device: mpns.DeviceConnected, reason: "device queue full"},
		mpns: answer{200, map[string]string{"X-Notificationstatus": "QueueFull", "X-Subscriptionstatus": "Active",
			"X-Deviceconnectionstatus": "Connected", "X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 200, Notification: "QueueFull", Subscription: "Active", Device: "Connected"},
		webPush:   answer{429, map[string]string{"Retry-After": "60", "Content-Type": text}},
		matrix:    answer{429, map[string]string{"Retry-After": "60", "Content-Type": jsonType}},
		pushkey:   pushkeyKept, resource: 503,
	}, {
		// Taken and dropped: Web Push gets the 201 it would have got.
		r: &senderRefusal{kind: refSuppressed, device: mpns.DeviceConnected, reason: "device power is low", messageID: "m1"},
		mpns: answer{200, map[string]string{"X-Notificationstatus": "Suppressed", "X-Subscriptionstatus": "Active",
			"X-Deviceconnectionstatus": "Connected", "X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 200, Notification: "Suppressed", Subscription: "Active", Device: "Connected"},
		webPush:   answer{201, map[string]string{"Location": created.location, "Ttl": "60", "Content-Type": text}},
		matrix:    answer{200, map[string]string{"Content-Type": jsonType}},
		pushkey:   pushkeyKept, resource: 503,
	}, {
		r: refuse(refInactive, "device inactive"),
		mpns: answer{412, map[string]string{"X-Notificationstatus": "Dropped", "X-Deviceconnectionstatus": "InActive",
			"X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 412, Notification: "Dropped", Device: "InActive", Error: "device inactive"},
		webPush:   answer{410, map[string]string{"Content-Type": text}},
		matrix:    answer{200, map[string]string{"Content-Type": jsonType}},
		pushkey:   pushkeyKept, resource: 503,
	}, {
		r:         &senderRefusal{kind: refUnavailable, retryAfter: time.Minute, reason: "store unavailable"},
		mpns:      answer{503, map[string]string{"Retry-After": "60", "X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 503, Error: "store unavailable"},
		webPush:   answer{503, map[string]string{"Retry-After": "60", "Content-Type": text}},
		matrix:    answer{503, map[string]string{"Retry-After": "60", "Content-Type": jsonType}},
		pushkey:   pushkeyRetry, resource: 503,
	}, {
		r:         &senderRefusal{kind: refSourceBusy, retryAfter: time.Minute, unread: true, reason: "busy"},
		mpns:      answer{503, map[string]string{"Retry-After": "60", "Connection": "close", "X-Messageid": "id1", "Content-Type": text}},
		multicast: MulticastResult{Status: 503, Error: "busy"},
		webPush:   answer{429, map[string]string{"Retry-After": "1", "Connection": "close", "Content-Type": text}},
		matrix:    answer{503, map[string]string{"Retry-After": "60", "Connection": "close", "Content-Type": jsonType}},
		pushkey:   pushkeyRetry, resource: 503,
	}}

	seen := map[refusalKind]bool{}
	for _, c := range cases {
		seen[c.r.kind] = true
		t.Run(c.r.kind.String(), func(t *testing.T) {
			rec := httptest.NewRecorder()
			writeMPNS(rec, c.r, "id1")
			if got := recorded(rec); got.String() != c.mpns.String() {
				t.Errorf("MPNS:\n got %s\nwant %s", got, c.mpns)
			}

			o := mpnsOutcome(c.r)
			got := MulticastResult{Status: o.Code, Notification: o.Notification, Subscription: o.Subscription, Device: o.Device}
			if o.Code != http.StatusOK {
				got.Error = o.Message
			}
			if got != c.multicast {
				t.Errorf("multicast: got %+v, want %+v", got, c.multicast)
			}

			rec = httptest.NewRecorder()
			webPushRefused(c.r, created).write(rec)
			if got := recorded(rec); got.String() != c.webPush.String() {
				t.Errorf("Web Push:\n got %s\nwant %s", got, c.webPush)
			}

			rec = httptest.NewRecorder()
			writeMatrix(rec, c.r)
			if got := recorded(rec); got.String() != c.matrix.String() {
				t.Errorf("Matrix:\n got %s\nwant %s", got, c.matrix)
			}
			if got := matrixVerdict(c.r); got != c.pushkey {
				t.Errorf("Matrix pushkey verdict %d, want %d", got, c.pushkey)
			}

			rec = httptest.NewRecorder()
			if got := messageRefused(rec, c.r); got != c.resource {
				t.Errorf("message resource: %d, want %d", got, c.resource)
			}
		})
	}
	for k := refNoChannel; k <= refSourceBusy; k++ {
		if !seen[k] {
			t.Errorf("refusal %s has no row in the table", k)
		}
	}
}

// A refusal is found however deeply it is wrapped; any other error is the
// service's own failure, answered as unavailable.
func TestAsRefusal(t *testing.T) {
	quota := quotaRefusal(500, time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	if got := asRefusal(fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", quota)), time.Minute); got != quota {
		t.Fatalf("wrapped refusal: got %v, want %v", got, quota)
	}
	if quota.retryAfter != 12*time.Hour+time.Second || !quota.until.Equal(time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("quota at noon: retry after %v until %v; want 12h0m1s until the next midnight", quota.retryAfter, quota.until)
	}
	got := asRefusal(errors.New("disk I/O error"), time.Minute)
	if got.kind != refUnavailable || got.retryAfter != time.Minute || strings.Contains(got.reason, "disk") {
		t.Fatalf("a plain error: %+v; want unavailable, a minute, and no internals", got)
	}
}
