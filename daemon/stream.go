package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/wire"
)

// hub wakes an app's event stream when the app has new events, and knows
// how far each app has been sent its events.
type hub struct {
	mu      sync.Mutex
	streams map[string]*appStream
	// before is the highest event id when the daemon started: an earlier
	// process may have sent any of those. sent is, per app, the highest
	// event id a stream of this process has handed it.
	before int64
	sent   map[string]int64
}

func newHub() *hub { return &hub{streams: map[string]*appStream{}, sent: map[string]int64{}} }

// markSent records that appID has been sent its events up to id.
func (h *hub) markSent(appID string, id int64) {
	h.mu.Lock()
	if id > h.sent[appID] {
		h.sent[appID] = id
	}
	h.mu.Unlock()
}

// errAckUnsent: an ack or resume point names an event the app was never
// sent; taking it would delete the app's own events before it saw them.
var errAckUnsent = errors.New("event id beyond the last event sent to this app")

// checkAck reports whether appID may acknowledge (or resume after) id.
func (h *hub) checkAck(appID string, id int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if id <= h.before || id <= h.sent[appID] {
		return nil
	}
	return fmt.Errorf("%w (%d)", errAckUnsent, max(h.before, h.sent[appID]))
}

func (h *hub) wake(appID string) {
	h.mu.Lock()
	s := h.streams[appID]
	h.mu.Unlock()
	if s != nil {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// attach makes s the app's stream, ending any earlier one: an app runs once.
func (h *hub) attach(s *appStream) {
	h.mu.Lock()
	old := h.streams[s.app]
	h.streams[s.app] = s
	h.mu.Unlock()
	if old != nil {
		old.replaced()
		<-old.done
	}
}

func (h *hub) detach(s *appStream) {
	h.mu.Lock()
	if h.streams[s.app] == s {
		delete(h.streams, s.app)
	}
	h.mu.Unlock()
}

// eventSink is how an app's stream reaches it: a websocket, or a
// Server-Sent Events response for apps without a websocket library.
type eventSink interface {
	// send writes one event: its id and its JSON.
	send(id int64, b []byte) error
	// finish ends the stream, saying why where the transport can.
	finish(code int, text string)
}

// appStream is one app's event stream. The write loop sends stored events
// in order; acks arrive on the websocket or by POST.
type appStream struct {
	app    string
	sink   eventSink
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	closeCode  int
	closeText  string
	cleanClose bool
}

func (s *appStream) replaced() {
	s.mu.Lock()
	s.closeCode, s.closeText = wire.CloseReplaced, "another event stream for this app"
	s.mu.Unlock()
	s.cancel()
}

// stop ends the stream as an app's clean close does: the app is no longer
// running at once.
func (s *appStream) stop() {
	s.mu.Lock()
	s.cleanClose = true
	s.closeCode, s.closeText = websocket.CloseNormalClosure, "the app stopped"
	s.mu.Unlock()
	s.cancel()
}

var localUpgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 4096,
	// The local socket's file permissions decide who may connect.
	CheckOrigin: func(*http.Request) bool { return true },
}

// streamEventBatch bounds how many events one wakeup reads.
const streamEventBatch = 64

// streamWriteTimeout bounds one event's write: an app that stops reading
// loses its stream, not the daemon's goroutine.
const streamWriteTimeout = 10 * time.Second

// handleEvents serves GET /v1/apps/{app}/events: a websocket, or with
// Accept: text/event-stream Server-Sent Events. While it is open the app
// counts as running (and, with ?foreground=1, in the foreground).
func (d *Daemon) handleEvents(w http.ResponseWriter, r *http.Request) {
	appID := r.PathValue("app")
	if !wire.ValidName(appID) {
		writeError(w, http.StatusBadRequest, app.CodeBadRequest, "bad app id")
		return
	}
	sse := wantsEventStream(r)
	after, err := streamAfter(r, sse)
	if err == nil {
		err = d.hub.checkAck(appID, after)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, app.CodeBadRequest, err.Error())
		return
	}
	if !sse && !websocket.IsWebSocketUpgrade(r) {
		writeError(w, http.StatusBadRequest, app.CodeBadRequest,
			"the event stream is a websocket, or Server-Sent Events with Accept: text/event-stream")
		return
	}
	if !d.beginStream() {
		writeError(w, http.StatusServiceUnavailable, app.CodeServerUnavailable, "the daemon is shutting down")
		return
	}
	defer d.streams.Done()
	foreground := r.URL.Query().Get("foreground") == "1" || r.URL.Query().Get("foreground") == "true"
	if sse {
		d.serveSSE(w, r, appID, after, foreground)
		return
	}
	conn, err := localUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetReadLimit(4096)
	ws := &wsSink{conn: conn}
	var wg sync.WaitGroup
	d.runStream(appID, ws, after, foreground, nil, func(s *appStream) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.cancel()
			s.readLoop(d, conn)
		}()
	}, func() {
		// The writer has sent its close frame. Let the reader take what
		// the app sent before its answering close, so an ack that was in
		// flight (an app closing its stream and at once opening another,
		// which replaces this one) is recorded and its events are not
		// sent again.
		wait := time.Second
		if d.ctx.Err() != nil {
			wait = 0 // the daemon is stopping
		}
		conn.SetReadDeadline(time.Now().Add(wait))
		wg.Wait()
		conn.Close()
	})
}

// streamAfter is the last event the app handled: ?after=ID, or for
// Server-Sent Events the Last-Event-ID an EventSource sends when it
// reconnects.
func streamAfter(r *http.Request, sse bool) (int64, error) {
	v := r.URL.Query().Get("after")
	if v == "" && sse {
		v = strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	}
	if v == "" {
		return 0, nil
	}
	after, err := strconv.ParseInt(v, 10, 64)
	if err != nil || after < 0 {
		return 0, fmt.Errorf("bad event id %q: want the id of the last event handled, a number ≥ 0", v)
	}
	return after, nil
}

// runStream runs an app's event stream on sink until it ends: it makes the
// app running, starts the transport's reader, writes events, and records
// how the app left. ready runs once the app counts as running, before any
// event is written; drain runs after the writer ends.
func (d *Daemon) runStream(appID string, sink eventSink, after int64, foreground bool, ready func(), startReader func(*appStream), drain func()) {
	ctx, cancel := context.WithCancel(d.ctx)
	defer cancel()
	s := &appStream{app: appID, sink: sink, wake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	defer close(s.done)
	d.hub.attach(s)
	defer d.hub.detach(s)

	// "Running" is recorded far ahead while the stream is open, and cut to
	// the grace period when it ends without a clean close.
	forever := d.cfg.Clock.Now().Add(100 * 365 * 24 * time.Hour)
	if err := d.store.SetRunning(d.ctx, appID, forever, foreground); err != nil {
		d.log.Error("marking app running failed", "app", appID, "err", err)
		return
	}
	if after > 0 {
		if err := d.store.AckEvents(d.ctx, appID, after); err != nil {
			d.log.Warn("acking events failed", "app", appID, "err", err)
		}
	}
	if ready != nil {
		ready()
	}
	d.log.Info("app running", "app", appID, "foreground", foreground)
	// Tell the app where the link stands, as ConnectionStatusChanged did.
	connected := d.link.Connected()
	d.appEvent(d.ctx, appID, app.Event{Type: app.EventStatus, Connected: &connected})

	if startReader != nil {
		startReader(s)
	}
	s.writeLoop(d, after)
	cancel()
	if drain != nil {
		drain()
	}

	s.mu.Lock()
	clean := s.cleanClose
	s.mu.Unlock()
	until := d.cfg.Clock.Now().Add(d.cfg.RunningGrace)
	if clean {
		until = time.Time{}
	}
	// Another stream for the app may already have taken over.
	d.hub.mu.Lock()
	current := d.hub.streams[appID]
	d.hub.mu.Unlock()
	if current == s || current == nil {
		if err := d.store.SetRunning(context.Background(), appID, until, false); err != nil {
			d.log.Warn("marking app stopped failed", "app", appID, "err", err)
		}
	}
	d.log.Info("app event stream ended", "app", appID, "clean", clean)
}

func (s *appStream) readLoop(d *Daemon, conn *websocket.Conn) {
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				s.mu.Lock()
				s.cleanClose = true
				s.mu.Unlock()
			}
			return
		}
		var ack app.EventAck
		if err := json.Unmarshal(data, &ack); err != nil || ack.Ack <= 0 {
			s.mu.Lock()
			s.closeCode, s.closeText = websocket.CloseUnsupportedData, `expected {"ack": <event id>}`
			s.mu.Unlock()
			return
		}
		if err := d.hub.checkAck(s.app, ack.Ack); err != nil {
			s.mu.Lock()
			s.closeCode, s.closeText = websocket.ClosePolicyViolation, err.Error()
			s.mu.Unlock()
			return
		}
		// The daemon's context, not the stream's: an ack read while the
		// stream is being replaced still counts.
		if err := d.store.AckEvents(d.ctx, s.app, ack.Ack); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Warn("acking events failed", "app", s.app, "err", err)
		}
	}
}

func (s *appStream) writeLoop(d *Daemon, after int64) {
	last := after
	// The connection state this stream last told the app: a connection
	// event that says the same again is skipped, so the app hears of each
	// change once (the stream's opening event can race the link's own).
	var told *bool
	for {
		events, err := d.store.Events(s.ctx, s.app, last, streamEventBatch)
		if err != nil {
			if s.ctx.Err() == nil {
				d.log.Error("reading app events failed", "app", s.app, "err", err)
			}
			break
		}
		for _, e := range events {
			last = e.ID
			// Marked before the write: an app may ack an event as soon as
			// it reads it, before send returns.
			d.hub.markSent(s.app, e.ID)
			var ev app.Event
			if err := json.Unmarshal(e.Data, &ev); err != nil {
				continue
			}
			if ev.Type == app.EventStatus && ev.Connected != nil {
				if told != nil && *told == *ev.Connected {
					continue
				}
				c := *ev.Connected
				told = &c
			}
			ev.ID = e.ID
			b, _ := json.Marshal(ev)
			if err := s.sink.send(e.ID, b); err != nil {
				s.cancel()
				return
			}
		}
		if len(events) == streamEventBatch {
			continue
		}
		select {
		case <-s.ctx.Done():
		case <-s.wake:
			continue
		}
		break
	}
	s.mu.Lock()
	code, text := s.closeCode, s.closeText
	s.mu.Unlock()
	if code == 0 {
		code = websocket.CloseGoingAway
	}
	s.sink.finish(code, text)
}

// wsSink is an event stream on a websocket: one JSON text frame per event.
type wsSink struct{ conn *websocket.Conn }

func (w *wsSink) send(_ int64, b []byte) error {
	w.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	return w.conn.WriteMessage(websocket.TextMessage, b)
}

func (w *wsSink) finish(code int, text string) {
	w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
}

// beginStream registers an event stream so Close can wait for it: the
// local API server does not track hijacked connections, and a stream
// records the app's running state on its way out.
func (d *Daemon) beginStream() bool {
	d.streamMu.Lock()
	defer d.streamMu.Unlock()
	if d.closing {
		return false
	}
	d.streams.Add(1)
	return true
}
