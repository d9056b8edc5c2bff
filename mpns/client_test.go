package mpns_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldpush/herald/mpns"
)

// service answers as the notification service's endpoint does: it parses
// every POST with ParseRequest and answers Received, or 400 with the
// reason; it keeps what it parsed.
func service(t *testing.T) (*httptest.Server, chan *mpns.Notification) {
	t.Helper()
	got := make(chan *mpns.Notification, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		n, err := mpns.ParseRequest(r.Header, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got <- n
		w.Header().Set(mpns.HeaderNotificationStatus, mpns.StatusReceived)
		w.Header().Set(mpns.HeaderSubscriptionStatus, mpns.SubscriptionActive)
		w.Header().Set(mpns.HeaderDeviceConnectionStatus, mpns.DeviceConnected)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestClientSendsEachKind(t *testing.T) {
	srv, got := service(t)
	var c mpns.Client
	msgs := map[mpns.Kind]mpns.Message{
		mpns.KindToast: &mpns.Toast{Text1: "Hi", Text2: "there", Param: "/Page.xaml?x=1"},
		mpns.KindTile:  &mpns.Tile{Template: mpns.TemplateIconic, Fields: []mpns.Field{{Name: "Count", Value: "3"}}},
		mpns.KindRaw:   mpns.Raw(`{"sync":true}`),
	}
	for _, spec := range mpns.Kinds() {
		if !spec.MPNS() {
			continue
		}
		m, ok := msgs[spec.Kind]
		if !ok {
			t.Fatalf("no message for kind %s in this test", spec.Kind)
		}
		for _, d := range []mpns.Delay{mpns.Immediate, mpns.Within450s, mpns.Within900s} {
			res, err := c.Send(context.Background(), srv.URL+"/x", m, mpns.SendOptions{Delay: d})
			if err != nil {
				t.Fatalf("%s/%d: %v", spec.Kind, d, err)
			}
			if !res.Received() || res.Subscription != mpns.SubscriptionActive || res.Device != mpns.DeviceConnected {
				t.Fatalf("%s/%d: %+v", spec.Kind, d, res)
			}
			if len(res.MessageID) != 36 {
				t.Fatalf("%s: message id %q is not a UUID", spec.Kind, res.MessageID)
			}
			n := <-got
			if n.Kind != spec.Kind || n.Delay != d || n.MessageID != res.MessageID || string(n.Body) != string(m.Payload()) {
				t.Fatalf("%s/%d: the service parsed %+v", spec.Kind, d, n)
			}
		}
	}
}

func TestClientReportsRefusals(t *testing.T) {
	srv, _ := service(t)
	var c mpns.Client
	ctx := context.Background()

	// A refusal is an answer, not an error.
	res, err := c.Send(ctx, srv.URL, mpns.Raw(nil), mpns.SendOptions{MessageID: "m-1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusBadRequest || res.Received() || !strings.Contains(res.Error, "empty body") || res.MessageID != "m-1" {
		t.Fatalf("empty raw: %+v", res)
	}

	// What cannot be sent is refused before anything goes out.
	for name, o := range map[string]mpns.SendOptions{
		"delay":      {Delay: 5},
		"message id": {MessageID: "two\nlines"},
	} {
		if _, err := c.Send(ctx, srv.URL, mpns.Raw("x"), o); !errors.Is(err, mpns.ErrBadRequest) {
			t.Errorf("%s: %v, want ErrBadRequest", name, err)
		}
	}
	if _, err := c.Send(ctx, "http://[::1", mpns.Raw("x"), mpns.SendOptions{}); err == nil {
		t.Error("a malformed URI was sent")
	}

	// A service that is gone is an error.
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	if _, err := c.Send(ctx, gone.URL, mpns.Raw("x"), mpns.SendOptions{}); err == nil {
		t.Error("sending to a closed port succeeded")
	}
}

// A hostile endpoint cannot make the client read an unbounded answer.
func TestClientBoundsTheAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(strings.Repeat("x", 1<<20)))
	}))
	defer srv.Close()
	res, err := (&mpns.Client{HTTP: srv.Client()}).Send(context.Background(), srv.URL, mpns.Raw("x"), mpns.SendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != http.StatusServiceUnavailable || len(res.Error) != 4096 {
		t.Fatalf("status %d, error of %d bytes", res.Status, len(res.Error))
	}
}
