package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// unixHTTP is a plain HTTP client on the daemon's socket, as an app in
// another language has: no websocket library.
func unixHTTP(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
}

// sseEvent is one Server-Sent Event as the wire carries it.
type sseEvent struct {
	id    string
	event string
	data  string
}

// sseStream reads Server-Sent Events from a response body.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
	err    chan error
}

// openSSE opens an app's event stream as Server-Sent Events.
func openSSE(t testing.TB, socket, appID, query, lastID string) *sseStream {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://herald/v1/apps/"+appID+"/events"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := unixHTTP(socket).Do(req)
	if err != nil {
		t.Fatalf("opening the event stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("event stream: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	s := &sseStream{resp: resp, events: make(chan sseEvent, 64), err: make(chan error, 1)}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) read() {
	sc := bufio.NewScanner(s.resp.Body)
	var e sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if e.data != "" || e.event != "" {
				s.events <- e
			}
			e = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			e.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			e.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			e.data += strings.TrimPrefix(line, "data: ")
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	s.err <- err
}

func (s *sseStream) close() { s.resp.Body.Close() }

// next returns the next SSE event, failing the test after 10 s.
func (s *sseStream) next(t testing.TB) sseEvent {
	t.Helper()
	select {
	case e := <-s.events:
		return e
	case err := <-s.err:
		s.err <- err
		select {
		case e := <-s.events: // sent before the error
			return e
		default:
		}
		t.Fatalf("event stream ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	panic("unreachable")
}

// nextApp returns the next app event, checking that its SSE id is the
// JSON's id.
func (s *sseStream) nextApp(t testing.TB) app.Event {
	t.Helper()
	e := s.next(t)
	if e.event != "" {
		t.Fatalf("got an %q event (%s), want an app event", e.event, e.data)
	}
	var ev app.Event
	if err := json.Unmarshal([]byte(e.data), &ev); err != nil {
		t.Fatalf("event data %q: %v", e.data, err)
	}
	if strconv.FormatInt(ev.ID, 10) != e.id {
		t.Fatalf("SSE id %q, JSON id %d", e.id, ev.ID)
	}
	return ev
}

// nextOf skips connection events up to one of type typ.
func (s *sseStream) nextOf(t testing.TB, typ string) app.Event {
	t.Helper()
	for {
		e := s.nextApp(t)
		if e.Type == app.EventStatus && typ != app.EventStatus {
			continue
		}
		if e.Type != typ {
			t.Fatalf("got a %s event (%+v), want %s", e.Type, e, typ)
		}
		return e
	}
}

// ended waits for the stream's end and returns its "end" event's data.
func (s *sseStream) ended(t testing.TB) string {
	t.Helper()
	for {
		select {
		case e := <-s.events:
			if e.event == "end" {
				return e.data
			}
		case err := <-s.err:
			// The reader sends every event before its error: take
			// what is left.
			for {
				select {
				case e := <-s.events:
					if e.event == "end" {
						return e.data
					}
					continue
				default:
				}
				break
			}
			t.Fatalf("stream ended without an end event: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("stream did not end within 10 s")
		}
	}
}

// quiet fails if an app event arrives within d: for checking that nothing
// is replayed, after the event that must come first has come.
func (s *sseStream) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case e := <-s.events:
		t.Fatalf("unexpected event %s %s", e.id, e.data)
	case <-time.After(d):
	}
}

func postAck(t testing.TB, socket, appID, body string) (int, app.ErrorResponse) {
	t.Helper()
	resp, err := unixHTTP(socket).Post("http://herald/v1/apps/"+appID+"/events/ack", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var er app.ErrorResponse
	json.NewDecoder(resp.Body).Decode(&er)
	return resp.StatusCode, er
}

func stopEvents(t testing.TB, socket, appID string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, "http://herald/v1/apps/"+appID+"/events", nil)
	resp, err := unixHTTP(socket).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSSEStream: an app with no websocket library gets raw notifications
// and foreground toasts as Server-Sent Events, acknowledges them by POST,
// and resumes with Last-Event-ID without getting them twice.
func TestSSEStream(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ch := openToast(t, d.Client, "demo")

	s := openSSE(t, d.Socket, "demo", "?foreground=1", "")
	if e := s.nextApp(t); e.Type != app.EventStatus || e.Connected == nil || !*e.Connected {
		t.Fatalf("first event %+v, want connection connected=true", e)
	}
	mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: "raw-1", body: []byte("héllo\nworld")})
	raw := s.nextOf(t, app.EventRaw)
	if raw.MessageID != "raw-1" || string(raw.Body) != "héllo\nworld" || raw.App != "demo" {
		t.Fatalf("raw event %+v", raw)
	}
	mustReceive(t, ch.URI, toastReq("toast-1"))
	toast := s.nextOf(t, app.EventToast)
	if toast.MessageID != "toast-1" || toast.Text1 != "Hello" || toast.ID <= raw.ID {
		t.Fatalf("toast event %+v after raw id %d", toast, raw.ID)
	}
	// In the foreground the app took the toast, not the shell.
	waitToasts(t, d.Client, "demo", "toast-1")
	ts, err := d.Client.Toasts(context.Background(), "demo")
	if err != nil || ts[0].ShownBy != "app" {
		t.Fatalf("toast shown by %q (%v), want app", ts[0].ShownBy, err)
	}
	// The phone knows when the sender's POST was accepted, as well as
	// when the toast arrived.
	if ts[0].SentAt.IsZero() || ts[0].SentAt.After(ts[0].ReceivedAt) {
		t.Fatalf("toast sent at %v, received at %v", ts[0].SentAt, ts[0].ReceivedAt)
	}

	// Acknowledge the raw one only, and reconnect as an EventSource does.
	if code, er := postAck(t, d.Socket, "demo", fmt.Sprintf(`{"ack":%d}`, raw.ID)); code != http.StatusNoContent {
		t.Fatalf("ack: %d %+v", code, er)
	}
	s.close()
	s = openSSE(t, d.Socket, "demo", "?foreground=1", "")
	if e := s.nextOf(t, app.EventToast); e.ID != toast.ID {
		t.Fatalf("replayed %+v, want the unacknowledged toast %d", e, toast.ID)
	}
	s.close()
	s = openSSE(t, d.Socket, "demo", "?foreground=1", strconv.FormatInt(toast.ID, 10))
	mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: "raw-2", body: []byte("2")})
	if e := s.nextOf(t, app.EventRaw); e.MessageID != "raw-2" {
		t.Fatalf("after Last-Event-ID got %+v, want raw-2", e)
	}

	// The largest event docs/local-api.md promises: a full raw payload is
	// one data line of under 5 KiB.
	big := strings.Repeat("\xff", 3072)
	bigID := strings.Repeat("m", 64)
	mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: bigID, body: []byte(big)})
	e := s.next(t)
	for strings.Contains(e.data, `"connection"`) {
		e = s.next(t)
	}
	if !strings.Contains(e.data, bigID) || len(e.data) >= 5<<10 {
		t.Fatalf("largest raw event is %d bytes of JSON, want under 5 KiB (%.80s…)", len(e.data), e.data)
	}
}

// TestSSEStopAndReplace: DELETE on the stream stops the app at once (the
// websocket's normal close), and a second stream replaces the first, which
// is told why with an "end" event.
func TestSSEStopAndReplace(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	openToast(t, d.Client, "demo")

	first := openSSE(t, d.Socket, "demo", "", "")
	first.nextOf(t, app.EventStatus)
	second := openSSE(t, d.Socket, "demo", "", "")
	if end := first.ended(t); !strings.Contains(end, `"code":4004`) {
		t.Fatalf("replaced stream ended with %s, want code 4004", end)
	}
	second.nextOf(t, app.EventStatus)

	if code := stopEvents(t, d.Socket, "demo"); code != http.StatusNoContent {
		t.Fatalf("DELETE events: %d, want 204", code)
	}
	if end := second.ended(t); !strings.Contains(end, `"code":1000`) {
		t.Fatalf("stopped stream ended with %s, want code 1000", end)
	}
	st, err := d.Client.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(st.Running, "demo") {
		t.Fatalf("demo still running after DELETE: %v", st.Running)
	}
	// Stopping an app that is not running is not an error.
	if code := stopEvents(t, d.Socket, "demo"); code != http.StatusNoContent {
		t.Fatalf("second DELETE: %d, want 204", code)
	}
}

// TestSSEBrokenStreamKeepsRunning: an SSE connection that just drops is a
// crash, not a stop: the app stays running for the grace period, so a raw
// notification sent meanwhile waits for it.
func TestSSEBrokenStreamKeepsRunning(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ch := openToast(t, d.Client, "demo")
	s := openSSE(t, d.Socket, "demo", "", "")
	s.nextOf(t, app.EventStatus)
	s.close()
	testenv.Eventually(t, 10*time.Second, "stream gone", func() bool {
		// A second open would replace a live stream; the log is the
		// daemon's, so ask the status instead: still running.
		st, err := d.Client.Status(context.Background())
		return err == nil && slices.Contains(st.Running, "demo")
	})
	mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: "while-away", body: []byte("x")})
	s = openSSE(t, d.Socket, "demo", "", "")
	if e := s.nextOf(t, app.EventRaw); e.MessageID != "while-away" {
		t.Fatalf("got %+v, want while-away", e)
	}
	waitCounter(t, d.Client, daemon.CountRawDropped, 0)
}

// TestEventStreamBadInput: each bad request gets a 400 BadRequest naming
// what is wrong, and the app's stream is not disturbed.
func TestEventStreamBadInput(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ch := openToast(t, d.Client, "demo")
	s := openSSE(t, d.Socket, "demo", "", "")
	s.nextOf(t, app.EventStatus)

	get := func(path string, h map[string]string) (int, app.ErrorResponse) {
		req, _ := http.NewRequest(http.MethodGet, "http://herald"+path, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := unixHTTP(d.Socket).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var er app.ErrorResponse
		json.NewDecoder(resp.Body).Decode(&er)
		return resp.StatusCode, er
	}
	sse := map[string]string{"Accept": "text/event-stream"}
	gets := []struct {
		name string
		path string
		h    map[string]string
	}{
		{"neither websocket nor SSE", "/v1/apps/other/events", nil},
		{"Last-Event-ID not a number", "/v1/apps/other/events", map[string]string{"Accept": "text/event-stream", "Last-Event-ID": "abc"}},
		{"negative Last-Event-ID", "/v1/apps/other/events", map[string]string{"Accept": "text/event-stream", "Last-Event-ID": "-5"}},
		{"after overflows", "/v1/apps/other/events?after=99999999999999999999", sse},
		{"bad app id", "/v1/apps/%20x/events", sse},
	}
	for _, tt := range gets {
		if code, er := get(tt.path, tt.h); code != http.StatusBadRequest || er.Code != app.CodeBadRequest || er.Message == "" {
			t.Errorf("%s: %d %+v, want 400 BadRequest with a message", tt.name, code, er)
		}
	}
	acks := []struct{ name, body string }{
		{"zero", `{"ack":0}`},
		{"negative", `{"ack":-1}`},
		{"not a number", `{"ack":"7"}`},
		{"unknown field", `{"ack":1,"all":true}`},
		{"not JSON", `ack=1`},
		{"oversize", `{"ack":1` + strings.Repeat(" ", 20<<10) + `}`},
	}
	for _, tt := range acks {
		if code, er := postAck(t, d.Socket, "demo", tt.body); code != http.StatusBadRequest || er.Code != app.CodeBadRequest {
			t.Errorf("ack %s: %d %+v, want 400 BadRequest", tt.name, code, er)
		}
	}
	// The stream still works.
	mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: "after-attacks", body: []byte("x")})
	if e := s.nextOf(t, app.EventRaw); e.MessageID != "after-attacks" {
		t.Fatalf("got %+v", e)
	}
}

// TestOneConnectionEventPerReconnect: an app whose daemon restarts hears
// where the link stands once when it reconnects, not once for the link
// coming up while it was away and again for its stream opening.
func TestOneConnectionEventPerReconnect(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	data, sock := t.TempDir(), testenv.SocketPath(t)
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), DataDir: data, Socket: sock})
	ch := openToast(t, d.Client, "demo")
	s := openSSE(t, sock, "demo", "", "")
	last := s.nextOf(t, app.EventStatus)

	// The stream breaks with the daemon: the app stays running through
	// the restart, so the new daemon's link coming up is news for it.
	d.Stop()
	d = testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), DataDir: data, Socket: sock})
	s = openSSE(t, sock, "demo", "", strconv.FormatInt(last.ID, 10))
	e := s.nextApp(t)
	if e.Type != app.EventStatus || !*e.Connected {
		t.Fatalf("first event after reconnecting %+v, want connection connected=true", e)
	}
	mustReceive(t, ch.URI, mpnsRequest{class: "3", messageID: "after-restart", body: []byte("x")})
	if e := s.nextApp(t); e.Type != app.EventRaw || e.MessageID != "after-restart" {
		t.Fatalf("next event %+v, want the raw notification (a second connection event is a duplicate)", e)
	}
}
