package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/storage"
	"github.com/heraldpush/herald/wire"
)

// sseRetryMillis is what an EventSource waits before reconnecting.
const sseRetryMillis = 1000

// wantsEventStream reports whether the request asks for Server-Sent Events.
func wantsEventStream(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == "text/event-stream" {
			return true
		}
	}
	return false
}

// serveSSE is the event stream for apps without a websocket library: one
// Server-Sent Event per app event, acks by POST /v1/apps/{app}/events/ack.
// The app counts as running from when the response headers arrive.
func (d *Daemon) serveSSE(w http.ResponseWriter, r *http.Request, appID string, after int64, foreground bool) {
	rc := http.NewResponseController(w)
	sink := &sseSink{w: w, rc: rc}
	started := false
	ready := func() {
		started = true
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, "retry: %d\n\n", sseRetryMillis)
		rc.Flush()
	}
	// The request's context ends when the app closes its connection (the
	// server reads the idle connection in the background): that ends the
	// stream as a websocket without a close does.
	startReader := func(s *appStream) {
		go func() {
			select {
			case <-r.Context().Done():
				s.cancel()
			case <-s.ctx.Done():
			}
		}()
	}
	d.runStream(appID, sink, after, foreground, ready, startReader, nil)
	if !started {
		// The app could not be marked running (the database failed).
		writeError(w, http.StatusInternalServerError, app.CodeInternal, "the event stream could not start; see the daemon's log")
	}
}

// sseSink writes events as Server-Sent Events: "id" is the event's id (an
// EventSource sends it back as Last-Event-ID when it reconnects), "data"
// the same JSON a websocket frame carries. No "event" line, so a browser's
// onmessage sees every event; the JSON's "type" says which it is.
type sseSink struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (s *sseSink) send(id int64, b []byte) error {
	s.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	// The JSON has no newlines (encoding/json escapes them in strings), so
	// it is one data line.
	if _, err := fmt.Fprintf(s.w, "id: %d\ndata: %s\n\n", id, b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// finish tells the app why its stream ends, as the websocket's close frame
// would: an "end" event (a browser's onmessage does not see it).
func (s *sseSink) finish(code int, text string) {
	b, _ := json.Marshal(streamEnd{Code: code, Reason: text})
	s.rc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(s.w, "event: end\ndata: %s\n\n", b)
	s.rc.Flush()
}

// streamEnd is the data of a Server-Sent Events stream's last event.
type streamEnd struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// handleAck serves POST /v1/apps/{app}/events/ack {"ack": ID}: the app
// has handled every event up to ID (the websocket's {"ack": ID} frame, for
// Server-Sent Events).
func (d *Daemon) handleAck(w http.ResponseWriter, r *http.Request) {
	appID := r.PathValue("app")
	if !wire.ValidName(appID) {
		writeError(w, http.StatusBadRequest, app.CodeBadRequest, "bad app id")
		return
	}
	var req app.EventAck
	if !decode(w, r, &req) {
		return
	}
	if req.Ack <= 0 {
		writeError(w, http.StatusBadRequest, app.CodeBadRequest, `expected {"ack": <event id>}, an id > 0`)
		return
	}
	if err := d.hub.checkAck(appID, req.Ack); err != nil {
		writeError(w, http.StatusBadRequest, app.CodeBadRequest, err.Error())
		return
	}
	if err := d.store.AckEvents(r.Context(), appID, req.Ack); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleStopEvents serves DELETE /v1/apps/{app}/events: the app stops
// running at once, as a websocket's normal close does. A Server-Sent
// Events stream has no close of its own: one that ends without this counts
// as broken, and the app as running for the grace period.
func (d *Daemon) handleStopEvents(w http.ResponseWriter, r *http.Request) {
	appID := r.PathValue("app")
	if !wire.ValidName(appID) {
		writeError(w, http.StatusBadRequest, app.CodeBadRequest, "bad app id")
		return
	}
	d.hub.mu.Lock()
	s := d.hub.streams[appID]
	d.hub.mu.Unlock()
	if s != nil {
		s.stop()
		<-s.done
		w.WriteHeader(http.StatusNoContent)
		return
	}
	// No stream: an app in its grace period after a broken stream stops
	// now.
	if err := d.store.SetRunning(r.Context(), appID, time.Time{}, false); err != nil && !errors.Is(err, storage.ErrNotFound) {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
