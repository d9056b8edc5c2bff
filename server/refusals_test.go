package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// One refusal, the daily quota used up, reaches every sender protocol
// through the one pipeline and is answered in each one's terms: MPNS's 406
// with the device's status, Web Push's 429 with a Retry-After at the next
// UTC midnight (never every second), multicast's per-channel 406, and the
// Matrix gateway keeping the pushkey.
func TestQuotaRefusedByEveryProtocol(t *testing.T) {
	ts := startService(t, server.Config{Limits: server.Limits{DailyQuota: 1}})
	d := ts.enrol()
	_, uri := d.register("app", true, true)
	wantStatus(t, post(t, uri, mpns.KindRaw, "3", "", []byte("one")), 200, "Received", "Connected")

	wantStatus(t, post(t, uri, mpns.KindRaw, "3", "", []byte("two")), 406, "Dropped", "Connected")

	res := wpPost(t, uri, wpHeader("TTL", "60"), []byte("ciphertext"))
	// The clock is at noon UTC: the quota refills in 12 hours.
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "43201" {
		t.Fatalf("Web Push over quota: %d Retry-After %q; want 429 with 43201", res.StatusCode, res.Header.Get("Retry-After"))
	}

	body, _ := json.Marshal(server.MulticastRequest{Channels: []string{uri}, Payload: "three"})
	req, _ := http.NewRequest(http.MethodPost, ts.http.URL+server.MulticastPath, bytes.NewReader(body))
	req.Header = rawHeaders()
	mres, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var mc server.MulticastResponse
	err = json.NewDecoder(mres.Body).Decode(&mc)
	mres.Body.Close()
	if err != nil || mres.StatusCode != 200 || len(mc.Results) != 1 {
		t.Fatalf("multicast: %d %+v %v", mres.StatusCode, mc, err)
	}
	if r := mc.Results[0]; r.Status != 406 || r.Notification != "Dropped" || r.Subscription != "Active" || r.Device != "Connected" ||
		!strings.Contains(r.Error, "daily quota") {
		t.Fatalf("multicast result over quota: %+v", r)
	}

	mx := `{"notification":{"event_id":"$e","devices":[{"pushkey":"` + uri + `"}]}}`
	xres, err := http.Post(ts.http.URL+server.MatrixNotifyPath, "application/json", strings.NewReader(mx))
	if err != nil {
		t.Fatal(err)
	}
	var mr server.MatrixResponse
	err = json.NewDecoder(xres.Body).Decode(&mr)
	xres.Body.Close()
	if err != nil || xres.StatusCode != 200 || len(mr.Rejected) != 0 {
		t.Fatalf("Matrix over quota: %d %+v %v; want 200 and the pushkey kept", xres.StatusCode, mr, err)
	}
}
