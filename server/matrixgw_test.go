package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/wire"
)

func matrixBody(eventID string, pushkeys ...string) []byte {
	type device struct {
		AppID   string `json:"app_id"`
		PushKey string `json:"pushkey"`
	}
	var devs []device
	for _, k := range pushkeys {
		devs = append(devs, device{AppID: "org.kde.neochat", PushKey: k})
	}
	b, _ := json.Marshal(map[string]any{"notification": map[string]any{
		"event_id": eventID, "room_id": "!room:example.org", "type": "m.room.message", "sender": "@alice:example.org",
		"counts": map[string]int{"unread": 2}, "devices": devs,
	}})
	return b
}

func matrixPost(t *testing.T, url string, body []byte) (int, []string, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r struct {
		Rejected []string `json:"rejected"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &r); err != nil || r.Rejected == nil {
			t.Fatalf("200 without a rejected list: %s (%v)", raw, err)
		}
	}
	return resp.StatusCode, r.Rejected, string(raw)
}

// NeoChat's check: GET on the gateway says it is a Matrix gateway.
func TestMatrixGatewayDiscovery(t *testing.T) {
	ts := startService(t, server.Config{})
	resp, err := http.Get(ts.http.URL + server.MatrixNotifyPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct {
		UnifiedPush struct {
			Gateway string `json:"gateway"`
		} `json:"unifiedpush"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 || v.UnifiedPush.Gateway != "matrix" {
		t.Fatalf("discovery: %d %+v %v", resp.StatusCode, v, err)
	}
}

// A homeserver's notification reaches the pushkey's channel byte for
// byte; pushkeys that are not channels of this service are rejected.
func TestMatrixGatewayForwards(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("org.kde.neochat", false, false)
	_, pub, _ := vapidKeys(t)
	_, restricted := d.registerVAPID("org.kde.tokodon", pub)
	goneID, gone := d.register("old", false, false)
	d.req++
	d.send(wire.Unregister{Type: wire.TypeUnregister, ReqID: d.req, ChannelID: goneID})
	d.expectResult()

	url := ts.http.URL + server.MatrixNotifyPath
	forged := strings.Replace(uri, "127.0.0.1", "evil.example", 1)
	madeUp := ts.http.URL + server.ThrottledPath + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	authPath := strings.Replace(uri, server.ThrottledPath, server.UnthrottledPath, 1)
	body := matrixBody("$event1:example.org", uri, gone, forged, madeUp, authPath, "not a url", restricted, uri)
	code, rejected, raw := matrixPost(t, url, body)
	if code != 200 {
		t.Fatalf("gateway answered %d: %s", code, raw)
	}
	want := []string{gone, forged, madeUp, authPath, "not a url", restricted}
	if !slices.Equal(rejected, want) {
		t.Fatalf("rejected %q, want %q", rejected, want)
	}
	n := d.collect(1) // once, though named twice
	if n[0].Kind != string(mpns.KindRaw) || !bytes.Equal(n[0].Body, body) || n[0].MessageID != "$event1:example.org" {
		t.Fatalf("delivered %+v; want the homeserver's body as a raw notification", n[0])
	}
	d.ack(n[0].Seq)
	d.barrier()
}

// Oversize bodies, too many devices, bad JSON and other methods are
// refused with Matrix errors, and nothing is delivered.
func TestMatrixGatewayRefuses(t *testing.T) {
	ts := startService(t, server.Config{})
	d := ts.enrol()
	_, uri := d.register("org.kde.neochat", false, false)
	url := ts.http.URL + server.MatrixNotifyPath
	many := make([]string, server.MaxMatrixDevices+1)
	for i := range many {
		many[i] = fmt.Sprintf("%s?%d", uri, i)
	}
	big := matrixBody(strings.Repeat("e", mpns.MaxBodySize), uri)
	for _, c := range []struct {
		name string
		body []byte
		code int
	}{
		{"over the body bound", big, http.StatusRequestEntityTooLarge},
		{"too many devices", matrixBody("$e", many...), http.StatusBadRequest},
		{"no devices", matrixBody("$e"), http.StatusBadRequest},
		{"not JSON", []byte("<xml/>"), http.StatusBadRequest},
		{"devices not a list", []byte(`{"notification":{"devices":{"pushkey":1}}}`), http.StatusBadRequest},
	} {
		code, _, raw := matrixPost(t, url, c.body)
		if code != c.code || !strings.Contains(raw, "errcode") {
			t.Errorf("%s: %d %s, want %d with an errcode", c.name, code, raw, c.code)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d, want 405", resp.StatusCode)
	}
	// Nothing reached the device: the next notification is the first.
	wantStatus(t, post(t, uri, mpns.KindRaw, "", "after", []byte("x")), 200, "Received", "Connected")
	if n := d.collect(1); n[0].MessageID != "after" {
		t.Fatalf("the device got %q first", n[0].MessageID)
	}
}

// One homeserver flooding the gateway from 127.0.0.1 is answered 429 with
// Retry-After once past the sender rate; another on 127.0.0.2 is still
// forwarded, and so is a notification whose event_id is far too long to
// name a message (it is delivered unnamed).
func TestMatrixGatewayFlood(t *testing.T) {
	ts := startService(t, server.Config{Limits: server.Limits{SenderRate: 1, SenderBurst: 5, ChannelRate: -1, DailyQuota: -1}})
	d := ts.enrol()
	_, uri := d.register("org.kde.neochat", false, false)
	url := ts.http.URL + server.MatrixNotifyPath
	postFrom := func(c *http.Client, body []byte) *http.Response {
		t.Helper()
		res, err := c.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Skipf("no second loopback address here: %v", err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	flooder, other := fromAddr("127.0.0.1"), fromAddr("127.0.0.2")
	limited, forwarded := 0, 0
	for i := range 200 {
		switch res := postFrom(flooder, matrixBody(fmt.Sprintf("$flood%d:example.org", i), uri)); res.StatusCode {
		case http.StatusTooManyRequests:
			limited++
			if res.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		case http.StatusOK:
			forwarded++
		default:
			t.Fatalf("flooder got %d", res.StatusCode)
		}
	}
	if limited < 190 {
		t.Fatalf("only %d of 200 flood requests limited", limited)
	}
	// An event_id 40 times the longest message id, within the body bound.
	body := matrixBody("$"+strings.Repeat("e", 2500)+":example.org", uri)
	if res := postFrom(other, body); res.StatusCode != http.StatusOK {
		t.Fatalf("the other homeserver got %d during the flood", res.StatusCode)
	}
	got := d.collect(forwarded + 1)
	if last := got[len(got)-1]; !bytes.Equal(last.Body, body) || last.MessageID != "" {
		t.Fatalf("the other homeserver's notification arrived as %q named %q", last.Body, last.MessageID)
	}
	t.Logf("matrix flood: 200 from one address, %d answered 429, %d forwarded; the other homeserver: 1 sent, 1 delivered", limited, forwarded)
}
