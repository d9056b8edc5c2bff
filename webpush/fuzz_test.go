package webpush

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// testKey is an application server key (a valid P-256 point).
const testKey = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"

// FuzzVAPID: any Authorization header is refused with one of the two
// VAPID errors, never a panic; none of the seeds' forgeries passes.
func FuzzVAPID(f *testing.F) {
	f.Add("vapid t=eyJhbGciOiJFUzI1NiJ9.e30.sig, k=" + testKey)
	f.Add("vapid t=, k=")
	f.Add("WebPush x")
	f.Add("vapid k=" + testKey + ",t=a.b.c,extra=1")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, authz string) {
		err := VerifyVAPID(authz, testKey, "https://push.example", now)
		if err == nil {
			t.Fatalf("%q verified without a signature by the key", authz)
		}
		if !errors.Is(err, ErrVAPIDMissing) && !errors.Is(err, ErrVAPIDInvalid) {
			t.Fatalf("%q: %v is neither VAPID error", authz, err)
		}
	})
}

// FuzzWebPushRequest: any TTL, Topic and Urgency header is accepted within the
// rules or refused as a bad request.
func FuzzWebPushRequest(f *testing.F) {
	f.Add("60", "topic", "normal", []byte("x"))
	f.Add("-1", "a/b", "urgent", []byte{})
	f.Add("99999999999", "", "low, high", []byte("y"))
	f.Fuzz(func(t *testing.T, ttl, topic, urgency string, body []byte) {
		h := http.Header{"Ttl": {ttl}, "Topic": {topic}, "Urgency": {urgency}}
		m, err := ParseRequest(h, body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("%v is not a bad request", err)
			}
			return
		}
		if m.TTL < 0 || KeptTTL(m.TTL) > MaxTTL || len(m.Topic) > MaxTopicLength || len(m.Body) == 0 || len(m.Body) > MaxBodySize {
			t.Fatalf("accepted %+v", m)
		}
	})
}
