package daemon_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/dbustest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

// upCall is one call the distributor made to a test connector.
type upCall struct {
	method, token, endpoint, id string
	msg                         []byte
}

// connector is a UnifiedPush app on the bus, as KUnifiedPush's connector
// library is: it owns its name and serves /org/unifiedpush/Connector with
// Connector1 or Connector2.
type connector struct {
	t     testing.TB
	conn  *dbus.Conn
	name  string
	calls chan upCall
	// failNext makes the next Connector2 Message answer an error, as an
	// app that could not take it.
	failNext chan struct{}
}

func newConnector(t testing.TB, bus, name string, version int) *connector {
	t.Helper()
	conn, err := dbus.Connect(bus)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &connector{t: t, conn: conn, name: name, calls: make(chan upCall, 32), failNext: make(chan struct{}, 1)}
	var obj any = connector1Object{c}
	iface := "org.unifiedpush.Connector1"
	if version == 2 {
		obj, iface = connector2Object{c}, "org.unifiedpush.Connector2"
	}
	if err := conn.Export(obj, "/org/unifiedpush/Connector", iface); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(name, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s: %v %v", name, reply, err)
	}
	return c
}

type connector1Object struct{ c *connector }

func (o connector1Object) Message(token string, msg []byte, id string) *dbus.Error {
	o.c.calls <- upCall{method: "Message", token: token, msg: msg, id: id}
	return nil
}

func (o connector1Object) NewEndpoint(token, endpoint string) *dbus.Error {
	o.c.calls <- upCall{method: "NewEndpoint", token: token, endpoint: endpoint}
	return nil
}

func (o connector1Object) Unregistered(token string) *dbus.Error {
	o.c.calls <- upCall{method: "Unregistered", token: token}
	return nil
}

type connector2Object struct{ c *connector }

func str(args map[string]dbus.Variant, k string) string { s, _ := args[k].Value().(string); return s }

func (o connector2Object) Message(args map[string]dbus.Variant) (map[string]dbus.Variant, *dbus.Error) {
	select {
	case <-o.c.failNext:
		return nil, dbus.MakeFailedError(errBusy)
	default:
	}
	msg, _ := args["message"].Value().([]byte)
	o.c.calls <- upCall{method: "Message", token: str(args, "token"), msg: msg, id: str(args, "id")}
	return map[string]dbus.Variant{"id": args["id"]}, nil
}

func (o connector2Object) NewEndpoint(args map[string]dbus.Variant) (map[string]dbus.Variant, *dbus.Error) {
	o.c.calls <- upCall{method: "NewEndpoint", token: str(args, "token"), endpoint: str(args, "endpoint")}
	return map[string]dbus.Variant{}, nil
}

func (o connector2Object) Unregistered(args map[string]dbus.Variant) (map[string]dbus.Variant, *dbus.Error) {
	o.c.calls <- upCall{method: "Unregistered", token: str(args, "token")}
	return map[string]dbus.Variant{}, nil
}

type busyError struct{}

func (busyError) Error() string { return "busy" }

var errBusy = busyError{}

// next waits for the connector's next call, which must be method.
func (c *connector) next(method string) upCall {
	c.t.Helper()
	select {
	case call := <-c.calls:
		if call.method != method {
			c.t.Fatalf("%s got %s(%q), want %s", c.name, call.method, call.token, method)
		}
		return call
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s: no %s call", c.name, method)
	}
	return upCall{}
}

func (c *connector) distributor() dbus.BusObject {
	return c.conn.Object(daemon.UnifiedPushBusName, "/org/unifiedpush/Distributor")
}

func (c *connector) register1(service, token string) (result, reason string) {
	c.t.Helper()
	if err := c.distributor().Call("org.unifiedpush.Distributor1.Register", 0, service, token, "test app").Store(&result, &reason); err != nil {
		c.t.Fatalf("Register: %v", err)
	}
	return result, reason
}

func (c *connector) register2(service, token, vapid string) (result, reason string) {
	c.t.Helper()
	var out map[string]dbus.Variant
	err := c.distributor().Call("org.unifiedpush.Distributor2.Register", 0, map[string]dbus.Variant{
		"service": dbus.MakeVariant(service), "token": dbus.MakeVariant(token),
		"description": dbus.MakeVariant("test app"), "vapid": dbus.MakeVariant(vapid)}).Store(&out)
	if err != nil {
		c.t.Fatalf("Register: %v", err)
	}
	return str(out, "success"), str(out, "reason")
}

// post sends a raw notification to an endpoint and returns the status.
func post(t *testing.T, uri, messageID string, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(mpns.HeaderNotificationClass, "3")
	req.Header.Set(mpns.HeaderMessageID, messageID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// postWebPush sends body to an endpoint as a Web Push sender would, signed
// with the application server key key (public part pub), and returns the
// status. The service never decrypts, so the body need not be ciphertext.
func postWebPush(t *testing.T, uri string, key *ecdsa.PrivateKey, pub string, body []byte) int {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"aud": u.Scheme + "://" + u.Host,
		"exp": time.Now().Add(time.Hour).Unix(), "sub": "mailto:test@example.com"}).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, uri, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("TTL", "60")
	req.Header.Set("Content-Encoding", "aes128gcm")
	req.Header.Set("Authorization", "vapid t="+tok+", k="+pub)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestUnifiedPushDistributor runs the daemon as a UnifiedPush distributor
// on a real session bus, with one app on Connector1 and one on
// Connector2, through registration, messages (posted to the endpoint on a
// real service), a daemon restart and unregistration.
func TestUnifiedPushDistributor(t *testing.T) {
	bus := dbustest.SessionBus(t)
	svc := testenv.Service(t, "", server.ServeConfig{})
	dataDir := t.TempDir()
	cfg := daemon.Config{Service: svc.URL(), DataDir: dataDir, UnifiedPushBus: bus}
	d := testenv.StartDaemon(t, cfg)

	app1 := newConnector(t, bus, "org.example.One", 1)
	app2 := newConnector(t, bus, "org.example.Two", 2)

	var xml string
	if err := app1.distributor().Call("org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&xml); err != nil {
		t.Fatal(err)
	}
	for _, iface := range []string{"org.unifiedpush.Distributor1", "org.unifiedpush.Distributor2"} {
		if !strings.Contains(xml, `<interface name="`+iface+`">`) {
			t.Errorf("introspection lacks %s", iface)
		}
	}

	if res, reason := app1.register1("org.example.One", "token-one"); res != "REGISTRATION_SUCCEEDED" {
		t.Fatalf("v1 Register = %s %s", res, reason)
	}
	ep1 := app1.next("NewEndpoint")
	if ep1.token != "token-one" || !strings.HasPrefix(ep1.endpoint, svc.URL()) {
		t.Fatalf("v1 NewEndpoint = %+v, want token-one and a URI of %s", ep1, svc.URL())
	}
	if res, reason := app2.register2("org.example.Two", "token-two", ""); res != "REGISTRATION_SUCCEEDED" {
		t.Fatalf("v2 Register = %s %s", res, reason)
	}
	ep2 := app2.next("NewEndpoint")
	if ep2.token != "token-two" || ep2.endpoint == ep1.endpoint || !strings.HasPrefix(ep2.endpoint, svc.URL()) {
		t.Fatalf("v2 NewEndpoint = %+v", ep2)
	}

	// Registering again with the same token finds the same channel, and
	// NewEndpoint follows again.
	if res, _ := app1.register1("org.example.One", "token-one"); res != "REGISTRATION_SUCCEEDED" {
		t.Fatalf("repeated Register = %s", res)
	}
	if again := app1.next("NewEndpoint"); again.endpoint != ep1.endpoint {
		t.Errorf("repeated Register endpoint %s, want %s", again.endpoint, ep1.endpoint)
	}

	// Messages arrive byte for byte, binary included.
	body1 := []byte{0, 1, 2, 0xff, 0xfe, 'h', 'i', 0x80}
	if code := post(t, ep1.endpoint, messageID(1), body1); code != http.StatusOK {
		t.Fatalf("POST to v1 endpoint: %d", code)
	}
	m := app1.next("Message")
	if m.token != "token-one" || !bytes.Equal(m.msg, body1) || m.id != messageID(1) {
		t.Errorf("v1 Message = %+v, want token-one %x %s", m, body1, messageID(1))
	}
	body2 := bytes.Repeat([]byte{0xa5, 0x00}, 1000)
	if code := post(t, ep2.endpoint, messageID(2), body2); code != http.StatusOK {
		t.Fatalf("POST to v2 endpoint: %d", code)
	}
	m = app2.next("Message")
	if m.token != "token-two" || !bytes.Equal(m.msg, body2) || m.id != messageID(2) {
		t.Errorf("v2 Message = token %q id %q, %d bytes", m.token, m.id, len(m.msg))
	}
	testenv.Eventually(t, 10*time.Second, "two acks", func() bool { return counter(t, d, daemon.CountUnifiedPushDelivered) == 2 })

	// A Connector2 app that answers Message with an error has not taken
	// it: it comes again, before the next one.
	app2.failNext <- struct{}{}
	if code := post(t, ep2.endpoint, messageID(3), []byte("three")); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	testenv.Eventually(t, 10*time.Second, "the refusal", func() bool { return len(app2.failNext) == 0 })
	if code := post(t, ep2.endpoint, messageID(4), []byte("four")); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	for _, want := range []string{"three", "four"} {
		if m := app2.next("Message"); string(m.msg) != want {
			t.Errorf("after a refusal got %q, want %q", m.msg, want)
		}
	}
	testenv.Eventually(t, 10*time.Second, "four acks", func() bool { return counter(t, d, daemon.CountUnifiedPushDelivered) == 4 })

	// A message for an app that has left the bus waits for it, across a
	// daemon restart.
	if _, err := app2.conn.ReleaseName("org.example.Two"); err != nil {
		t.Fatal(err)
	}
	if code := post(t, ep2.endpoint, messageID(5), []byte("while away")); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	// Another app's messages do not wait behind it.
	if code := post(t, ep1.endpoint, messageID(50), []byte("meanwhile")); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	if m := app1.next("Message"); string(m.msg) != "meanwhile" {
		t.Errorf("while another app is away got %q", m.msg)
	}
	testenv.Eventually(t, 10*time.Second, "the messages queued, all but one acked", func() bool {
		return counter(t, d, daemon.CountUnifiedPushQueued) == 6 && counter(t, d, daemon.CountUnifiedPushDelivered) == 5
	})

	// Registrations outlive the daemon and are announced again; one
	// whose channel was closed over the local API gets a new one.
	app1ID := appOf(t, d, ep1.endpoint)
	if err := d.Client.Close(context.Background(), app1ID); err != nil {
		t.Fatal(err)
	}
	d.Stop()
	if reply, err := app2.conn.RequestName("org.example.Two", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning the name again: %v %v", reply, err)
	}
	d = testenv.StartDaemon(t, cfg)
	again := app1.next("NewEndpoint")
	if again.token != "token-one" || again.endpoint == ep1.endpoint || !strings.HasPrefix(again.endpoint, svc.URL()) {
		t.Errorf("after restart v1 NewEndpoint = %+v, want a new URI in place of the closed %s", again, ep1.endpoint)
	}
	if code := post(t, ep1.endpoint, messageID(51), []byte("old")); code != http.StatusNotFound {
		t.Errorf("POST to the closed channel's URI: %d, want 404", code)
	}
	ep1.endpoint = again.endpoint
	if again := app2.next("NewEndpoint"); again.token != "token-two" || again.endpoint != ep2.endpoint {
		t.Errorf("after restart v2 NewEndpoint = %+v, want %s", again, ep2.endpoint)
	}
	if m := app2.next("Message"); string(m.msg) != "while away" || m.id != messageID(5) {
		t.Errorf("after restart the waiting message is %q %s", m.msg, m.id)
	}
	if code := post(t, ep1.endpoint, messageID(6), []byte("after restart")); code != http.StatusOK {
		t.Fatalf("POST after restart: %d", code)
	}
	if m := app1.next("Message"); string(m.msg) != "after restart" {
		t.Errorf("after restart Message %q", m.msg)
	}

	testenv.Eventually(t, 10*time.Second, "the acks", func() bool { return counter(t, d, daemon.CountUnifiedPushDelivered) == 7 })

	// A channel given a new URI announces it to its app.
	if got := appOf(t, d, ep1.endpoint); got != app1ID {
		t.Fatalf("the reopened channel is %s's, want %s", got, app1ID)
	}
	renewed, err := d.Client.Open(context.Background(), app1ID, app.OpenRequest{Channel: daemon.UnifiedPushChannel, Renew: true})
	if err != nil {
		t.Fatal(err)
	}
	if renewed.URI == ep1.endpoint {
		t.Fatalf("renewing kept the URI %s", renewed.URI)
	}
	if again := app1.next("NewEndpoint"); again.token != "token-one" || again.endpoint != renewed.URI {
		t.Errorf("after renewal NewEndpoint = %+v, want %s", again, renewed.URI)
	}
	ep1.endpoint = renewed.URI

	// Unregister closes the channel: the endpoint is gone.
	if err := app1.distributor().Call("org.unifiedpush.Distributor1.Unregister", 0, "token-one").Err; err != nil {
		t.Fatal(err)
	}
	if u := app1.next("Unregistered"); u.token != "token-one" {
		t.Errorf("Unregistered(%q)", u.token)
	}
	if code := post(t, ep1.endpoint, messageID(7), []byte("late")); code != http.StatusNotFound {
		t.Errorf("POST to an unregistered endpoint: %d, want 404", code)
	}
	var out map[string]dbus.Variant
	if err := app2.distributor().Call("org.unifiedpush.Distributor2.Unregister", 0,
		map[string]dbus.Variant{"token": dbus.MakeVariant("token-two")}).Store(&out); err != nil {
		t.Fatal(err)
	}
	if u := app2.next("Unregistered"); u.token != "token-two" {
		t.Errorf("Unregistered(%q)", u.token)
	}

	// An app that gives an application server key (v2's vapid) gets a
	// channel that takes only Web Push POSTs signed with it.
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := serverKey.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	vapid := base64.RawURLEncoding.EncodeToString(pub.Bytes())
	if res, reason := app2.register2("org.example.Two", "token-vapid", vapid); res != "REGISTRATION_SUCCEEDED" {
		t.Fatalf("v2 Register with vapid = %s %s", res, reason)
	}
	epv := app2.next("NewEndpoint")
	if code := post(t, epv.endpoint, messageID(9), []byte("unsigned")); code != http.StatusForbidden {
		t.Fatalf("MPNS POST to a vapid channel: %d, want 403", code)
	}
	signed := []byte{0xde, 0xad, 0xbe, 0xef}
	if code := postWebPush(t, epv.endpoint, serverKey, vapid, signed); code != http.StatusCreated {
		t.Fatalf("signed Web Push POST to a vapid channel: %d, want 201", code)
	}
	m = app2.next("Message")
	if m.token != "token-vapid" || !bytes.Equal(m.msg, signed) || m.id == "" {
		t.Errorf("vapid Message = token %q id %q body %x", m.token, m.id, m.msg)
	}
	if err := app2.distributor().Call("org.unifiedpush.Distributor2.Unregister", 0,
		map[string]dbus.Variant{"token": dbus.MakeVariant("token-vapid")}).Store(&out); err != nil {
		t.Fatal(err)
	}
	if u := app2.next("Unregistered"); u.token != "token-vapid" {
		t.Errorf("Unregistered(%q)", u.token)
	}
	chans, err := d.Client.Channels(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) != 0 {
		t.Errorf("channels left after unregistering: %+v", chans)
	}
}

// appOf is the app id whose channel has uri.
func appOf(t *testing.T, d *testenv.Daemon, uri string) string {
	t.Helper()
	chans, err := d.Client.Channels(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chans {
		if ch.URI == uri {
			if !strings.Contains(ch.App, "~") || ch.Name != daemon.UnifiedPushChannel {
				t.Fatalf("channel %+v is not a UnifiedPush registration's", ch)
			}
			return ch.App
		}
	}
	t.Fatalf("no channel has URI %s: %+v", uri, chans)
	return ""
}

// TestUnifiedPushRefusals: an app registers only for a name it owns, a
// token cannot be taken over by another app nor unregistered by it, and
// malformed registrations are refused, each without harm to the daemon.
func TestUnifiedPushRefusals(t *testing.T) {
	bus := dbustest.SessionBus(t)
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), UnifiedPushBus: bus})
	owner := newConnector(t, bus, "org.example.Owner", 1)
	other := newConnector(t, bus, "org.example.Other", 1)

	if res, _ := owner.register1("org.example.Owner", "mine"); res != "REGISTRATION_SUCCEEDED" {
		t.Fatalf("Register = %s", res)
	}
	owner.next("NewEndpoint")

	tests := []struct {
		name, service, token string
		wantReason           string
	}{
		{"a name the caller does not own", "org.example.Owner", "stolen", "UNAUTHORIZED"},
		{"a name nobody owns", "org.example.Nobody", "nobody", "UNAUTHORIZED"},
		{"another app's token", "org.example.Other", "mine", "UNAUTHORIZED"},
		{"an empty token", "org.example.Other", "", "INTERNAL_ERROR"},
		{"an oversize token", "org.example.Other", strings.Repeat("t", daemon.MaxUnifiedPushToken+1), "INTERNAL_ERROR"},
		{"a unique name", other.conn.Names()[0], "unique", "INTERNAL_ERROR"},
		{"not a bus name", "no dots", "bad", "INTERNAL_ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, reason := other.register1(tt.service, tt.token)
			if res != "REGISTRATION_FAILED" || reason != tt.wantReason {
				t.Errorf("Register(%q, %q) = %s %s, want REGISTRATION_FAILED %s", tt.service, tt.token, res, reason, tt.wantReason)
			}
		})
	}
	// Through Distributor2 too, and its VAPID key must be a P-256 point.
	for _, tt := range []struct{ service, token, vapid, wantReason string }{
		{"org.example.Owner", "stolen2", "", "UNAUTHORIZED"},
		{"org.example.Other", "v2", "not base64!", "INTERNAL_ERROR"},
		{"org.example.Other", "v2", "BAAA", "INTERNAL_ERROR"},
		// 65 bytes, 0x04 and zeros: not on the curve.
		{"org.example.Other", "v2", "BAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "INTERNAL_ERROR"},
		{"org.example.Other", "v2", strings.Repeat("B", 300), "INTERNAL_ERROR"},
	} {
		if res, reason := other.register2(tt.service, tt.token, tt.vapid); res != "REGISTRATION_FAILED" || reason != tt.wantReason {
			t.Errorf("v2 Register(%s, %s, vapid %.20q) = %s %s, want %s", tt.service, tt.token, tt.vapid, res, reason, tt.wantReason)
		}
	}
	if err := other.distributor().Call("org.unifiedpush.Distributor1.Unregister", 0, "mine").Err; err == nil {
		t.Error("another app unregistered a token not its own")
	}
	chans, err := d.Client.Channels(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) != 1 {
		t.Fatalf("channels = %d, want the owner's one: %+v", len(chans), chans)
	}
	// The registration's app id belongs to the registering process's
	// user, so the local API refuses it to other users.
	if uid, err := d.StoreForTest().AppOwner(context.Background(), chans[0].App); err != nil || uid != uint32(os.Getuid()) {
		t.Errorf("owner of %s = %d %v, want %d", chans[0].App, uid, err, os.Getuid())
	}
	select {
	case c := <-other.calls:
		t.Errorf("a refused app was called: %+v", c)
	default:
	}
	// A toast or tile for a UnifiedPush app's channel is a payload error,
	// not a Message; a raw one (here with no X-MessageID) is a Message
	// whose id is its sequence number.
	st, err := d.Client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seq := st.AppliedSeq
	h := daemon.LinkHandler(d.Daemon)
	for _, kind := range []mpns.Kind{mpns.KindToast, mpns.KindTile, mpns.KindRaw} {
		seq++
		if err := h.Apply(context.Background(), []wire.Notification{{Seq: seq, ChannelID: chans[0].ChannelID, Kind: string(kind), Body: []byte(kind)}}); err != nil {
			t.Fatal(err)
		}
	}
	if m := owner.next("Message"); string(m.msg) != string(mpns.KindRaw) || m.id != strconv.FormatUint(seq, 10) {
		t.Errorf("Message %q id %q, want the raw one with id %d", m.msg, m.id, seq)
	}
	if n := counter(t, d, daemon.CountPayloadErrors); n != 2 {
		t.Errorf("payload_errors = %d, want 2", n)
	}

	// The owner's registration still works.
	if res, _ := owner.register1("org.example.Owner", "mine"); res != "REGISTRATION_SUCCEEDED" {
		t.Errorf("owner's Register after the attacks = %s", res)
	}
	owner.next("NewEndpoint")
}
