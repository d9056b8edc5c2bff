package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"
	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// registerVAPID opens a channel restricted to an application server key.
func (d *testDevice) registerVAPID(app, key string) (channelID, uri string) {
	d.t.Helper()
	d.req++
	d.send(wire.Register{Type: wire.TypeRegister, ReqID: d.req, App: app, Channel: "default", VAPIDKey: key})
	r, ok := d.next().(*wire.Registered)
	if !ok || r.Code != "" {
		d.t.Fatalf("register: %+v", r)
	}
	d.power("normal")
	return r.ChannelID, r.URI
}

// vapidKeys is an application server's key pair, in webpush-go's spelling.
func vapidKeys(t testing.TB) (priv, pub string, key *ecdsa.PrivateKey) {
	t.Helper()
	priv, pub, err := webpushgo.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(priv)
	key, err = ecdsa.ParseRawPrivateKey(elliptic.P256(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub, key
}

// A real Go sender (webpush-go) posts a VAPID-signed, aes128gcm message;
// the device gets the ciphertext byte for byte as a webpush notification,
// and the app's keys decrypt it to the plaintext sent.
func TestWebPushGoSenderEndToEnd(t *testing.T) {
	ts := startService(t, server.Config{})
	now := time.Now().Truncate(time.Millisecond)
	ts.clk.Set(now) // webpush-go's JWT is signed against the real clock's day
	d := ts.enrol()
	priv, pub, _ := vapidKeys(t)
	_, uri := d.registerVAPID("chat", pub)
	sub := testenv.NewSubscriber(t)
	for _, plain := range []string{"hello from a Go sender", strings.Repeat("x", 3000)} {
		res, err := webpushgo.SendNotification([]byte(plain), webpushSubscription(sub, uri), &webpushgo.Options{
			Subscriber: "mailto:ops@example.org", VAPIDPublicKey: pub, VAPIDPrivateKey: priv, TTL: 3600,
			VapidExpiration: now.Add(12 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusCreated || res.Header.Get("TTL") != "3600" ||
			!strings.HasPrefix(res.Header.Get("Location"), uri+server.MessagesSegment) {
			t.Fatalf("answer %d %v %s", res.StatusCode, res.Header, body)
		}
		ns := d.expectNotify()
		if len(ns) != 1 || ns[0].Kind != string(mpns.KindWebPush) ||
			ns[0].MessageID != strings.TrimPrefix(res.Header.Get("Location"), uri+server.MessagesSegment) {
			t.Fatalf("notified %+v", ns)
		}
		got, err := sub.Decrypt(ns[0].Body)
		if err != nil || string(got) != plain {
			t.Fatalf("decrypted %q, %v; want %q", got, err, plain)
		}
		d.ack(ns[0].Seq)
	}
}

// wpPost sends one Web Push POST by hand.
func wpPost(t *testing.T, uri string, h http.Header, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

func wpHeader(kv ...string) http.Header {
	h := http.Header{"Content-Encoding": {"aes128gcm"}}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = append(h[kv[i]], kv[i+1])
	}
	return h
}

// Every answer of RFC 8030 a sender can get, and the attacks on the
// parsers: bad TTLs, Topics and Urgencies, both protocols at once, sizes
// at and above 4096, unknown channels.
func TestWebPushAnswers(t *testing.T) {
	ts := startService(t, server.Config{Limits: server.Limits{SenderRate: -1, ChannelRate: -1, DailyQuota: -1}})
	d := ts.enrol()
	_, uri := d.register("app", false, false)
	body := []byte("opaque ciphertext")
	for _, c := range []struct {
		name string
		uri  string
		h    http.Header
		body []byte
		code int
		ttl  string
	}{
		{"ok", uri, wpHeader("Ttl", "60"), body, 201, "60"},
		{"ttl only marks web push", uri, http.Header{"Ttl": {"60"}}, body, 201, "60"},
		{"ttl capped at 28 days", uri, wpHeader("Ttl", "2147483647"), body, 201, "2419200"},
		{"no ttl", uri, wpHeader(), body, 400, ""},
		{"negative ttl", uri, wpHeader("Ttl", "-1"), body, 400, ""},
		{"non-numeric ttl", uri, wpHeader("Ttl", "soon"), body, 400, ""},
		{"huge ttl", uri, wpHeader("Ttl", "99999999999999999999"), body, 400, ""},
		{"two ttls", uri, wpHeader("Ttl", "1", "Ttl", "2"), body, 400, ""},
		{"topic too long", uri, wpHeader("Ttl", "60", "Topic", strings.Repeat("a", 33)), body, 400, ""},
		{"topic not base64url", uri, wpHeader("Ttl", "60", "Topic", "a/b"), body, 400, ""},
		{"topic of 32", uri, wpHeader("Ttl", "60", "Topic", strings.Repeat("a", 32)), body, 201, "60"},
		{"two urgencies", uri, wpHeader("Ttl", "60", "Urgency", "low", "Urgency", "high"), body, 400, ""},
		{"urgency list", uri, wpHeader("Ttl", "60", "Urgency", "low, high"), body, 400, ""},
		{"unknown urgency", uri, wpHeader("Ttl", "60", "Urgency", "urgent"), body, 400, ""},
		{"known urgency", uri, wpHeader("Ttl", "60", "Urgency", "very-low"), body, 201, "60"},
		{"both protocols", uri, wpHeader("Ttl", "60", "X-WindowsPhone-Target", "toast"), body, 400, ""},
		{"both protocols, class", uri, wpHeader("Ttl", "60", "X-NotificationClass", "3"), body, 400, ""},
		{"empty body", uri, wpHeader("Ttl", "60"), nil, 400, ""},
		{"4096 bytes", uri, wpHeader("Ttl", "60"), bytes.Repeat([]byte{7}, 4096), 201, "60"},
		{"4097 bytes", uri, wpHeader("Ttl", "60"), bytes.Repeat([]byte{7}, 4097), 413, ""},
		{"unknown channel", ts.http.URL + server.ThrottledPath + "nosuchtoken", wpHeader("Ttl", "60"), body, 404, ""},
		{"authenticated path", ts.http.URL + server.UnthrottledPath + "x", wpHeader("Ttl", "60"), body, 404, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := wpPost(t, c.uri, c.h, c.body)
			if res.StatusCode != c.code || res.Header.Get("TTL") != c.ttl {
				t.Fatalf("answer %d TTL %q; want %d TTL %q", res.StatusCode, res.Header.Get("TTL"), c.code, c.ttl)
			}
			if res.Header.Get(mpns.HeaderNotificationStatus) != "" {
				t.Fatal("a Web Push sender got an MPNS status")
			}
		})
	}
	// An MPNS POST without Web Push headers is still MPNS, with its 3 KB.
	res := wpPost(t, uri, http.Header{}, bytes.Repeat([]byte{7}, 3073))
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("3073-byte MPNS raw: %d", res.StatusCode)
	}
	res = wpPost(t, uri, http.Header{}, []byte("raw"))
	if res.StatusCode != http.StatusOK || res.Header.Get(mpns.HeaderNotificationStatus) != mpns.StatusReceived {
		t.Fatalf("MPNS raw: %d %v", res.StatusCode, res.Header)
	}
}

// TTL 0 reaches a connected device and is dropped (still 201) for an
// away one; a Topic replaces the queued message whole, and only the newer
// reaches the device when it comes back.
func TestWebPushTTLZeroAndTopic(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("app", false, false)

	res := wpPost(t, uri, wpHeader("Ttl", "0"), []byte("now"))
	if res.StatusCode != 201 || res.Header.Get("TTL") != "0" {
		t.Fatalf("TTL 0 to a connected device: %d %v", res.StatusCode, res.Header)
	}
	ns := d.expectNotify()
	if len(ns) != 1 || string(ns[0].Body) != "now" {
		t.Fatalf("notified %+v", ns)
	}
	d.ack(ns[0].Seq)
	d.barrier()
	d.disconnect()

	res = wpPost(t, uri, wpHeader("Ttl", "0"), []byte("never"))
	if res.StatusCode != 201 {
		t.Fatalf("TTL 0 to an away device: %d", res.StatusCode)
	}
	first := wpPost(t, uri, wpHeader("Ttl", "600", "Topic", "score"), []byte("1-0"))
	second := wpPost(t, uri, wpHeader("Ttl", "600", "Topic", "score"), []byte("2-0"))
	wpPost(t, uri, wpHeader("Ttl", "60"), []byte("expires"))
	if first.StatusCode != 201 || second.StatusCode != 201 || first.Header.Get("Location") == second.Header.Get("Location") {
		t.Fatalf("topic posts: %d %d, locations %q %q", first.StatusCode, second.StatusCode,
			first.Header.Get("Location"), second.Header.Get("Location"))
	}
	ts.clk.Advance(2 * time.Minute) // past the last one's TTL, within the topic's
	d.connect(ns[0].Seq)
	got := d.expectNotify()
	if len(got) != 1 || string(got[0].Body) != "2-0" || !strings.HasSuffix(second.Header.Get("Location"), "/"+got[0].MessageID) {
		t.Fatalf("after reconnecting: %+v", got)
	}
}

// sign makes a VAPID header for the tests' own tokens.
func sign(t *testing.T, key *ecdsa.PrivateKey, pub string, method jwt.SigningMethod, claims jwt.MapClaims) string {
	t.Helper()
	var k any = key
	if method == jwt.SigningMethodHS256 {
		k = []byte(pub)
	}
	tok, err := jwt.NewWithClaims(method, claims).SignedString(k)
	if err != nil {
		t.Fatal(err)
	}
	return "vapid t=" + tok + ", k=" + pub
}

// A restricted channel takes only tokens that hold: every forgery, an
// expired or too-long-lived token, another audience, another key, and
// MPNS POSTs are refused; a replayed valid token within its life is
// accepted, as RFC 8292 lets it be reused.
func TestWebPushVAPIDAttacks(t *testing.T) {
	ts := startService(t, server.Config{Limits: server.Limits{SenderRate: -1, ChannelRate: -1, DailyQuota: -1}})
	d := ts.enrol()
	_, pub, key := vapidKeys(t)
	_, otherPub, otherKey := vapidKeys(t)
	_, uri := d.registerVAPID("app", pub)
	now := ts.clk.Now()
	aud := ts.http.URL
	good := jwt.MapClaims{"aud": aud, "exp": now.Add(time.Hour).Unix(), "sub": "mailto:a@example.org"}
	valid := sign(t, key, pub, jwt.SigningMethodES256, good)
	body := []byte("ciphertext")
	for _, c := range []struct {
		name string
		auth string
		code int
	}{
		{"valid", valid, 201},
		{"replayed", valid, 201},
		{"missing", "", 401},
		{"other scheme", "Bearer x", 401},
		{"no k", "vapid t=" + strings.Fields(valid)[1], 403},
		{"other key", sign(t, otherKey, otherPub, jwt.SigningMethodES256, good), 403},
		{"signed by another, our k", sign(t, otherKey, pub, jwt.SigningMethodES256, good), 403},
		{"expired", sign(t, key, pub, jwt.SigningMethodES256, jwt.MapClaims{"aud": aud, "exp": now.Add(-time.Minute).Unix()}), 403},
		{"exp over 24h", sign(t, key, pub, jwt.SigningMethodES256, jwt.MapClaims{"aud": aud, "exp": now.Add(25 * time.Hour).Unix()}), 403},
		{"no exp", sign(t, key, pub, jwt.SigningMethodES256, jwt.MapClaims{"aud": aud}), 403},
		{"wrong aud", sign(t, key, pub, jwt.SigningMethodES256, jwt.MapClaims{"aud": "https://evil.example", "exp": now.Add(time.Hour).Unix()}), 403},
		{"hs256 with the public key", sign(t, key, pub, jwt.SigningMethodHS256, good), 403},
		{"alg none", "vapid t=eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"`+aud+`","exp":`+strconv.FormatInt(now.Add(time.Hour).Unix(), 10)+`}`)) + "., k=" + pub, 403},
		{"garbage token", "vapid t=x.y.z, k=" + pub, 403},
		{"huge header", "vapid t=" + strings.Repeat("a", 5000) + ", k=" + pub, 400}, // over the header bound
	} {
		t.Run(c.name, func(t *testing.T) {
			h := wpHeader("Ttl", "60")
			if c.auth != "" {
				h.Set("Authorization", c.auth)
			}
			res := wpPost(t, uri, h, body)
			if res.StatusCode != c.code {
				t.Fatalf("answer %d, want %d", res.StatusCode, c.code)
			}
		})
	}
	res := wpPost(t, uri, http.Header{mpns.HeaderNotificationClass: {"3"}}, body)
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("MPNS POST to a restricted channel: %d", res.StatusCode)
	}
}

// A flood from one address is answered 429 with Retry-After, never 406,
// and a queue at its depth is 429 too.
func TestWebPushRates(t *testing.T) {
	ts := startService(t, server.Config{QueueDepth: 2, Limits: server.Limits{SenderRate: 1, SenderBurst: 3, ChannelRate: -1, DailyQuota: -1}})
	d := ts.enrol()
	_, uri := d.register("app", false, false)
	d.disconnect()
	var codes []int
	for i := 0; i < 5; i++ {
		res := wpPost(t, uri, wpHeader("Ttl", "60"), []byte("m"))
		codes = append(codes, res.StatusCode)
		if res.StatusCode == 429 && res.Header.Get("Retry-After") == "" {
			t.Fatal("429 without Retry-After")
		}
	}
	if codes[0] != 201 || codes[1] != 201 || codes[2] != 429 || codes[4] != 429 {
		t.Fatalf("codes %v: want 201 201 then 429 (queue full, then the rate)", codes)
	}
}

// Expired messages are deleted from the store by the service's sweep, so
// they stop counting toward the queue; live ones stay.
func TestWebPushExpiredDeleted(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("app", false, false)
	d.disconnect()
	for _, ttl := range []string{"30", "3600"} {
		if res := wpPost(t, uri, wpHeader("Ttl", ttl), []byte("m"+ttl)); res.StatusCode != 201 {
			t.Fatalf("TTL %s: %d", ttl, res.StatusCode)
		}
	}
	length := func() int64 {
		n, err := ts.store.QueueLength(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := length(); n != 2 {
		t.Fatalf("queue length %d, want 2", n)
	}
	ts.clk.Advance(2 * time.Minute)
	testenv.Eventually(t, frameWait, "the expired message deleted", func() bool { return length() == 1 })
	d.connect(0)
	if ns := d.expectNotify(); len(ns) != 1 || string(ns[0].Body) != "m3600" {
		t.Fatalf("after the sweep: %+v", ns)
	}
}

func webpushSubscription(s *testenv.Subscriber, endpoint string) *webpushgo.Subscription {
	return &webpushgo.Subscription{Endpoint: endpoint, Keys: webpushgo.Keys{P256dh: s.P256dh(), Auth: s.Auth()}}
}

// A flood from one address is answered 429 while a sender from another
// address is still served.
func TestWebPushFloodFromOneAddress(t *testing.T) {
	ts := startService(t, server.Config{Limits: server.Limits{SenderRate: 1, SenderBurst: 5, ChannelRate: -1, DailyQuota: -1}})
	d := ts.enrol()
	_, uri := d.register("app", false, false)
	flooder, other := fromAddr("127.0.0.1"), fromAddr("127.0.0.2")
	postFrom := func(c *http.Client) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, uri, strings.NewReader("m"))
		req.Header = wpHeader("Ttl", "60")
		res, err := c.Do(req)
		if err != nil {
			t.Skipf("no second loopback address here: %v", err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	limited := 0
	for i := 0; i < 50; i++ {
		if res := postFrom(flooder); res.StatusCode == http.StatusTooManyRequests {
			limited++
			if res.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		} else if res.StatusCode != http.StatusCreated {
			t.Fatalf("flooder got %d", res.StatusCode)
		}
	}
	if limited < 40 {
		t.Fatalf("only %d of 50 flood requests limited", limited)
	}
	if res := postFrom(other); res.StatusCode != http.StatusCreated {
		t.Fatalf("the other sender got %d during the flood", res.StatusCode)
	}
}

// A device away longer than --inactive-after still gets its Web Push
// messages stored (MPNS would answer 412): 201, delivered when it returns.
func TestWebPushInactiveDeviceStored(t *testing.T) {
	ts := startService(t, server.Config{InactiveAfter: time.Hour})
	d := ts.enrol()
	_, uri := d.register("app", false, false)
	d.disconnect()
	ts.clk.Advance(2 * time.Hour)
	if res := wpPost(t, uri, wpHeader("Ttl", "86400"), []byte("kept")); res.StatusCode != http.StatusCreated {
		t.Fatalf("to an inactive device: %d", res.StatusCode)
	}
	if res := wpPost(t, uri, http.Header{}, []byte("mpns")); res.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("MPNS to the same device: %d, want 412", res.StatusCode)
	}
	d.connect(0)
	if ns := d.expectNotify(); len(ns) != 1 || string(ns[0].Body) != "kept" {
		t.Fatalf("on return: %+v", ns)
	}
}

// The audience a token must name is the service's public origin, not the
// request's Host: a sender forging Host to match a token made for another
// origin is refused.
func TestWebPushVAPIDForgedHost(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, pub, key := vapidKeys(t)
	_, uri := d.registerVAPID("app", pub)
	auth := sign(t, key, pub, jwt.SigningMethodES256, jwt.MapClaims{"aud": "https://evil.example", "exp": ts.clk.Now().Add(time.Hour).Unix()})
	req, _ := http.NewRequest(http.MethodPost, uri, strings.NewReader("m"))
	req.Header = wpHeader("Ttl", "60")
	req.Header.Set("Authorization", auth)
	req.Host = "evil.example"
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("forged Host: %d, want 403", res.StatusCode)
	}
}

// A restricted channel's message resources answer only its application
// server: GET, HEAD and DELETE without the vapid authorization are 401
// (with WWW-Authenticate: vapid), with another key's, an expired one or
// two Authorization headers 403, and the message stays queued through
// all of them; with the POST's own authorization they work as on any
// channel.
func TestWebPushMessageResourceNeedsVAPID(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, pub, key := vapidKeys(t)
	_, otherPub, otherKey := vapidKeys(t)
	_, uri := d.registerVAPID("app", pub)
	d.disconnect()
	now := ts.clk.Now()
	aud := ts.http.URL
	claims := jwt.MapClaims{"aud": aud, "exp": now.Add(time.Hour).Unix()}
	valid := sign(t, key, pub, jwt.SigningMethodES256, claims)
	h := wpHeader("Ttl", "600")
	h.Set("Authorization", valid)
	res := wpPost(t, uri, h, []byte("m"))
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d", res.StatusCode)
	}
	msg := res.Header.Get("Location")
	ask := func(method string, auth ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, msg, nil)
		for _, a := range auth {
			req.Header.Add("Authorization", a)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	for _, c := range []struct {
		name   string
		method string
		auth   []string
		code   int
	}{
		{"GET without", http.MethodGet, nil, 401},
		{"HEAD without", http.MethodHead, nil, 401},
		{"DELETE without", http.MethodDelete, nil, 401},
		{"GET, other scheme", http.MethodGet, []string{"Bearer x"}, 401},
		{"GET, another key", http.MethodGet, []string{sign(t, otherKey, otherPub, jwt.SigningMethodES256, claims)}, 403},
		{"DELETE, another key", http.MethodDelete, []string{sign(t, otherKey, otherPub, jwt.SigningMethodES256, claims)}, 403},
		{"DELETE, signed by another with our k", http.MethodDelete, []string{sign(t, otherKey, pub, jwt.SigningMethodES256, claims)}, 403},
		{"DELETE, expired", http.MethodDelete, []string{sign(t, key, pub, jwt.SigningMethodES256, jwt.MapClaims{"aud": aud, "exp": now.Add(-time.Second).Unix()})}, 403},
		{"DELETE, another audience", http.MethodDelete, []string{sign(t, key, pub, jwt.SigningMethodES256, jwt.MapClaims{"aud": "https://evil.example", "exp": now.Add(time.Hour).Unix()})}, 403},
		{"DELETE, two Authorization headers", http.MethodDelete, []string{"Bearer x", valid}, 403},
		{"GET with the key", http.MethodGet, []string{valid}, 200},
	} {
		res := ask(c.method, c.auth...)
		if res.StatusCode != c.code {
			t.Errorf("%s: %d, want %d", c.name, res.StatusCode, c.code)
		}
		if c.code == 401 && res.Header.Get("WWW-Authenticate") != "vapid" {
			t.Errorf("%s: WWW-Authenticate %q", c.name, res.Header.Get("WWW-Authenticate"))
		}
	}
	if res := ask(http.MethodDelete, valid); res.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE with the key: %d", res.StatusCode)
	}
	if res := ask(http.MethodGet, valid); res.StatusCode != http.StatusGone {
		t.Fatalf("GET after the cancel: %d", res.StatusCode)
	}
}
