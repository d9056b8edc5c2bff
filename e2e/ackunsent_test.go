package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// TestAckBeyondSentRefused: an app acknowledges only events it was sent.
// An ack (by POST or on the websocket) or a resume point beyond the last
// event the daemon handed the app would delete the app's own pending
// events before it saw them: it is refused (400, or close 1008 on the
// websocket) and the pending raw notification still reaches the app.
func TestAckBeyondSentRefused(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ch := openToast(t, d.Client, "demo")

	s := openSSE(t, d.Socket, "demo", "", "")
	status := s.nextOf(t, app.EventStatus)
	// The stream breaks: the app keeps running for the grace period, so a
	// raw notification waits for it as an event it has not been sent.
	s.close()
	mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: "pending", body: []byte("pending")})
	waitCounter(t, d.Client, daemon.CountRawDelivered, 1)

	tried, refused := 0, 0
	for _, id := range []int64{status.ID + 1, status.ID + 1000, 1 << 62} {
		tried++
		code, er := postAck(t, d.Socket, "demo", fmt.Sprintf(`{"ack":%d}`, id))
		if code != http.StatusBadRequest || er.Code != app.CodeBadRequest || !strings.Contains(er.Message, "beyond the last event sent") {
			t.Fatalf("POST ack %d with only %d sent: %d %+v, want 400 BadRequest", id, status.ID, code, er)
		}
		refused++
		tried++
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://herald/v1/apps/demo/events?after=%d", id), nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := unixHTTP(d.Socket).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("resume after %d with only %d sent: %d, want 400", id, status.ID, resp.StatusCode)
		}
		refused++
	}

	// On the websocket: the stream resends the pending event, then the
	// app acks far beyond it and is closed 1008.
	dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", d.Socket)
	}, HandshakeTimeout: 10 * time.Second}
	conn, _, err := dialer.Dial(fmt.Sprintf("ws://herald/v1/apps/demo/events?after=%d", status.ID), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var raw app.Event
	for raw.Type != app.EventRaw {
		if err := conn.ReadJSON(&raw); err != nil {
			t.Fatalf("websocket before the raw event: %v", err)
		}
	}
	if raw.MessageID != "pending" {
		t.Fatalf("websocket got %+v, want the pending raw notification", raw)
	}
	tried++
	conn.WriteJSON(app.EventAck{Ack: raw.ID + 1000})
	for {
		var e app.Event
		if err := conn.ReadJSON(&e); err != nil {
			if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
				t.Fatalf("websocket ack beyond sent: %v, want close 1008", err)
			}
			break
		}
	}
	refused++

	// Nothing was deleted: the pending event is still there for the app,
	// which acks it properly.
	s = openSSE(t, d.Socket, "demo", "", "")
	got := s.nextOf(t, app.EventRaw)
	if got.ID != raw.ID || got.MessageID != "pending" {
		t.Fatalf("after the refused acks the app got %+v, want the pending raw %d", got, raw.ID)
	}
	if code, er := postAck(t, d.Socket, "demo", fmt.Sprintf(`{"ack":%d}`, got.ID)); code != http.StatusNoContent {
		t.Fatalf("ack of an event sent: %d %+v, want 204", code, er)
	}
	t.Logf("acks beyond sent: %d tried, %d refused; legitimate: 1 raw sent, 1 Received, 1 delivered after the attack", tried, refused)
}
