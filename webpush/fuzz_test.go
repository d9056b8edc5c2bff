package webpush

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
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

// FuzzVAPIDToken: a token with any header and claims, signed by the
// channel's key, is accepted only if it is ES256 with one aud, the push
// service's origin, as a string and one integer exp within the next 24
// hours; anything else is ErrVAPIDInvalid, never a panic.
func FuzzVAPIDToken(f *testing.F) {
	exp := strconv.FormatInt(jwtNow.Add(time.Hour).Unix(), 10)
	f.Add(`{"alg":"ES256","typ":"JWT"}`, `{"aud":"`+jwtOrigin+`","exp":`+exp+`,"sub":"mailto:a@example.org"}`, false)
	f.Add(`{"alg":"ES256"}`, `{"aud":"https://evil.example","exp":`+exp+`,"aud":"`+jwtOrigin+`"}`, true)
	f.Add(`{"alg":"ES256"}`, `{"aud":"`+jwtOrigin+`","exp":`+exp+`.0}`, false)
	f.Add(`{"alg":"ES256"}`, `{"aud":["`+jwtOrigin+`"],"exp":"`+exp+`"}`, false)
	f.Fuzz(func(t *testing.T, header, claims string, high bool) {
		form := lowS
		if high {
			form = highS
		}
		err := VerifyVAPID(vapidHeader(signJWT(t, header, claims, form)), jwtTestPub, jwtOrigin, jwtNow)
		if err != nil {
			if !errors.Is(err, ErrVAPIDInvalid) {
				t.Fatalf("%v is not ErrVAPIDInvalid", err)
			}
			return
		}
		var h map[string]any
		if json.Unmarshal([]byte(header), &h) != nil || h["alg"] != "ES256" {
			t.Fatalf("header %q accepted", header)
		}
		var c map[string]any
		d := json.NewDecoder(strings.NewReader(claims))
		d.UseNumber()
		if d.Decode(&c) != nil || c["aud"] != jwtOrigin {
			t.Fatalf("claims %q accepted", claims)
		}
		n, ok := c["exp"].(json.Number)
		e, err := strconv.ParseInt(string(n), 10, 64)
		if !ok || err != nil || strings.ContainsAny(string(n), "+-.eE") ||
			!jwtNow.Before(time.Unix(e, 0)) || time.Unix(e, 0).After(jwtNow.Add(MaxVAPIDExpiry)) {
			t.Fatalf("claims %q accepted with exp %v", claims, c["exp"])
		}
	})
}
