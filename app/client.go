package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/heraldpush/herald/wire"
)

// Errors a caller acts on; an *Error from the daemon matches them with
// errors.Is by its code.
var (
	ErrChannelOpenFailed = errors.New(CodeChannelOpenFailed)
	ErrQuotaExceeded     = errors.New(CodeQuotaExceeded)
	ErrChannelExists     = errors.New(CodeChannelExists)
	ErrNotOpened         = errors.New(CodeNotOpened)
	// ErrDaemonUnavailable: nothing answers on the socket.
	ErrDaemonUnavailable = errors.New("herald daemon is not running (no answer on its socket)")
)

// Error is an error answered by the daemon.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("herald: %s: %s", e.Code, e.Message) }

// Is matches the sentinel errors by code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrChannelOpenFailed:
		return e.Code == CodeChannelOpenFailed
	case ErrQuotaExceeded:
		return e.Code == CodeQuotaExceeded
	case ErrChannelExists:
		return e.Code == CodeChannelExists
	case ErrNotOpened:
		return e.Code == CodeNotOpened
	}
	return false
}

// DefaultSocket is the socket path when neither an explicit path nor
// HERALD_SOCKET is given.
var DefaultSocket = "/run/herald/herald.sock"

// SocketFromEnv returns HERALD_SOCKET, or def.
func SocketFromEnv(def string) string {
	if s := os.Getenv("HERALD_SOCKET"); s != "" {
		return s
	}
	return def
}

// Client talks to the local daemon over its Unix socket.
type Client struct {
	socket string
	http   *http.Client
	device string
}

// DeviceHeader picks one phone of `herald emulate`, which serves every
// emulated phone's API on one socket.
const DeviceHeader = "X-Herald-Device"

// WithDevice returns a client for the named emulated phone.
func (c *Client) WithDevice(name string) *Client {
	cc := *c
	cc.device = name
	return &cc
}

// NewClient returns a client for the daemon listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{socket: socket, http: &http.Client{Transport: tr}}
}

// Socket returns the socket path the client uses.
func (c *Client) Socket() string { return c.socket }

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://herald"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.device != "" {
		req.Header.Set(DeviceHeader, c.device)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) && ne.Op == "dial" {
			return fmt.Errorf("%w: %s", ErrDaemonUnavailable, c.socket)
		}
		return fmt.Errorf("herald: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("herald: reading answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var er ErrorResponse
		if json.Unmarshal(data, &er) != nil || er.Code == "" {
			er = ErrorResponse{Code: "HTTP" + strconv.Itoa(resp.StatusCode), Message: string(data)}
		}
		return &Error{Status: resp.StatusCode, Code: er.Code, Message: er.Message}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("herald: bad answer: %w", err)
		}
	}
	return nil
}

func appPath(appID, rest string) string {
	return APIVersion + "/apps/" + url.PathEscape(appID) + rest
}

// Find returns the app's existing channel, or ErrNotOpened
// (HttpNotificationChannel.Find returning null).
func (c *Client) Find(ctx context.Context, appID string) (Channel, error) {
	var ch Channel
	err := c.do(ctx, http.MethodGet, appPath(appID, "/channel"), nil, &ch)
	return ch, err
}

// Open opens the app's channel (or returns the existing one), binding it as
// req asks.
func (c *Client) Open(ctx context.Context, appID string, req OpenRequest) (Channel, error) {
	var ch Channel
	err := c.do(ctx, http.MethodPost, appPath(appID, "/channel"), req, &ch)
	return ch, err
}

// Close closes the app's channel; its URI stops working.
func (c *Client) Close(ctx context.Context, appID string) error {
	return c.do(ctx, http.MethodDelete, appPath(appID, "/channel"), nil, nil)
}

// Bind changes the channel's shell bindings; nil fields keep their value.
func (c *Client) Bind(ctx context.Context, appID string, req BindRequest) (Channel, error) {
	var ch Channel
	err := c.do(ctx, http.MethodPatch, appPath(appID, "/channel/bindings"), req, &ch)
	return ch, err
}

// BindToShellToast lets the shell show the channel's toasts.
func (c *Client) BindToShellToast(ctx context.Context, appID string) error {
	t := true
	_, err := c.Bind(ctx, appID, BindRequest{Toast: &t})
	return err
}

// UnbindToShellToast stops toasts; senders get Suppressed.
func (c *Client) UnbindToShellToast(ctx context.Context, appID string) error {
	f := false
	_, err := c.Bind(ctx, appID, BindRequest{Toast: &f})
	return err
}

// BindToShellTile lets tile notifications update the app's tiles, with
// remote images allowed only from the given base URIs.
func (c *Client) BindToShellTile(ctx context.Context, appID string, allowedDomains ...string) error {
	t := true
	if allowedDomains == nil {
		allowedDomains = []string{}
	}
	_, err := c.Bind(ctx, appID, BindRequest{Tile: &t, Domains: &allowedDomains})
	return err
}

// UnbindToShellTile stops tile updates; senders get Suppressed.
func (c *Client) UnbindToShellTile(ctx context.Context, appID string) error {
	f := false
	_, err := c.Bind(ctx, appID, BindRequest{Tile: &f})
	return err
}

// Pin pins a secondary tile so its updates are delivered.
func (c *Client) Pin(ctx context.Context, appID, tileID string) (Channel, error) {
	var ch Channel
	err := c.do(ctx, http.MethodPost, appPath(appID, "/pins"), PinRequest{TileID: tileID}, &ch)
	return ch, err
}

// Channels lists channels (of one app if appID is not empty).
func (c *Client) Channels(ctx context.Context, appID string) ([]Channel, error) {
	var out []Channel
	err := c.do(ctx, http.MethodGet, APIVersion+"/channels?app="+url.QueryEscape(appID), nil, &out)
	return out, err
}

// Tiles lists live tile state.
func (c *Client) Tiles(ctx context.Context, appID string) ([]Tile, error) {
	var out []Tile
	err := c.do(ctx, http.MethodGet, APIVersion+"/tiles?app="+url.QueryEscape(appID), nil, &out)
	return out, err
}

// Toasts lists received toasts, oldest first.
func (c *Client) Toasts(ctx context.Context, appID string) ([]Toast, error) {
	var out []Toast
	err := c.do(ctx, http.MethodGet, APIVersion+"/toasts?app="+url.QueryEscape(appID), nil, &out)
	return out, err
}

// Status returns the daemon's state.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, APIVersion+"/status", nil, &st)
	return st, err
}

// StartScreen returns the address of the start screen (herald run --ui),
// with its key; only root and the daemon's own user get it.
func (c *Client) StartScreen(ctx context.Context) (string, error) {
	var s StartScreen
	err := c.do(ctx, http.MethodGet, APIVersion+"/ui", nil, &s)
	return s.URL, err
}

// SetPower sets the device's power level: normal, low or critical.
func (c *Client) SetPower(ctx context.Context, level string) error {
	return c.do(ctx, http.MethodPut, APIVersion+"/power", PowerRequest{Level: level}, nil)
}

// ListenOptions configure an event stream.
type ListenOptions struct {
	// Foreground marks the app as in the foreground: toasts come to it
	// instead of the shell.
	Foreground bool
	// Reconnect keeps the stream going across daemon restarts, retrying
	// every RetryEvery (default 1 s) until ctx ends.
	Reconnect  bool
	RetryEvery time.Duration
}

// Stream delivers an app's events. While it is open the app counts as
// running. Close it with Close so the daemon knows the app stopped.
type Stream struct {
	c      *Client
	app    string
	opts   ListenOptions
	mu     sync.Mutex
	conn   *websocket.Conn
	last   int64 // the newest event returned by Next
	acked  int64 // the newest event acknowledged to the daemon
	closed bool
	// reading is closed when the ReadMessage that Next is in returns;
	// nil when Next is not reading.
	reading chan struct{}
	wmu     sync.Mutex // one writer at a time: Next's acks and Close
	// first is the event Listen read to be sure the app counts as
	// running; Next returns it first.
	first *Event
}

// Listen opens the app's event stream.
func (c *Client) Listen(ctx context.Context, appID string, opts ListenOptions) (*Stream, error) {
	s := &Stream{c: c, app: appID, opts: opts}
	if err := s.connect(ctx); err != nil {
		return nil, err
	}
	// The daemon marks the app running before it sends any event (the
	// first is where the link stands), so once one is in, raw
	// notifications sent from now on reach the app instead of being
	// dropped as for an app that is not running.
	//
	// By then the daemon counts the app running, so ctx ending while the
	// first event is awaited closes the stream as an app that stops does,
	// with a close frame: handed to Next, it would cut the connection,
	// which the daemon takes for a crash and keeps the app "running" for
	// its grace period.
	first, endFirst := context.WithCancel(context.WithoutCancel(ctx))
	defer endFirst()
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closed)
		s.Close()
		endFirst() // a redial waiting for the daemon
	})
	e, err := s.Next(first)
	if !stop() {
		<-closed // the close handshake is under way: let it finish
		return nil, ctx.Err()
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	s.mu.Lock()
	s.first = &e
	s.mu.Unlock()
	return s, nil
}

func (s *Stream) connect(ctx context.Context) error {
	d := websocket.Dialer{
		NetDialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "unix", s.c.socket)
		},
		HandshakeTimeout: 10 * time.Second,
	}
	q := url.Values{}
	if s.opts.Foreground {
		q.Set("foreground", "1")
	}
	s.mu.Lock()
	if s.last > 0 {
		q.Set("after", strconv.FormatInt(s.last, 10))
	}
	s.mu.Unlock()
	var hdr http.Header
	if s.c.device != "" {
		hdr = http.Header{DeviceHeader: {s.c.device}}
	}
	conn, resp, err := d.DialContext(ctx, "ws://herald"+appPath(s.app, "/events")+"?"+q.Encode(), hdr)
	if err != nil {
		if resp != nil {
			return &Error{Status: resp.StatusCode, Code: "HTTP" + strconv.Itoa(resp.StatusCode), Message: "event stream refused"}
		}
		return fmt.Errorf("%w: %v", ErrDaemonUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		conn.Close()
		return net.ErrClosed
	}
	s.conn = conn
	return nil
}

// Next returns the next event. Calling Next again acknowledges the event
// it returned before, so an app that crashes while handling an event gets
// it again; events already returned by this stream are never repeated.
func (s *Stream) Next(ctx context.Context) (Event, error) {
	s.mu.Lock()
	if e := s.first; e != nil {
		s.first = nil
		s.mu.Unlock()
		return *e, nil
	}
	s.mu.Unlock()
	for {
		s.mu.Lock()
		conn, closed := s.conn, s.closed
		reading := make(chan struct{})
		if !closed {
			s.reading = reading
		}
		s.mu.Unlock()
		if closed {
			return Event{}, net.ErrClosed
		}
		s.ackReturned(conn)
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		_, data, err := conn.ReadMessage()
		stop()
		s.mu.Lock()
		s.reading = nil
		closed = s.closed
		s.mu.Unlock()
		close(reading)
		if err == nil && closed {
			// Close is waiting for the daemon to answer its close frame;
			// what the daemon sent before that is not for the app.
			return Event{}, net.ErrClosed
		}
		if err != nil {
			if ctx.Err() != nil {
				return Event{}, ctx.Err()
			}
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				// Close ended the read; redialling would undo it.
				return Event{}, net.ErrClosed
			}
			if !s.opts.Reconnect || websocket.IsCloseError(err, wire.CloseReplaced) {
				return Event{}, fmt.Errorf("herald: event stream: %w", err)
			}
			if err := s.redial(ctx); err != nil {
				return Event{}, err
			}
			continue
		}
		var e Event
		if err := json.Unmarshal(data, &e); err != nil {
			return Event{}, fmt.Errorf("herald: bad event: %w", err)
		}
		s.mu.Lock()
		dup := e.ID <= s.last
		if !dup {
			s.last = e.ID
		}
		s.mu.Unlock()
		if dup {
			continue
		}
		return e, nil
	}
}

// ackReturned acknowledges the events Next has returned.
func (s *Stream) ackReturned(conn *websocket.Conn) {
	s.mu.Lock()
	last, acked := s.last, s.acked
	s.mu.Unlock()
	if last <= acked {
		return
	}
	b, _ := json.Marshal(EventAck{Ack: last})
	s.wmu.Lock()
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err := conn.WriteMessage(websocket.TextMessage, b)
	s.wmu.Unlock()
	if err == nil {
		s.mu.Lock()
		s.acked = max(s.acked, last)
		s.mu.Unlock()
	}
}

func (s *Stream) redial(ctx context.Context) error {
	every := s.opts.RetryEvery
	if every <= 0 {
		every = time.Second
	}
	for {
		err := s.connect(ctx)
		if err == nil || errors.Is(err, net.ErrClosed) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// Close ends the stream cleanly: the app is no longer running. It sends
// the close frame and waits (up to a second) for the daemon's answer before
// it closes the connection: closing at once could make an event the daemon
// is writing fail first, and the daemon would take the stop for a crash
// and keep the app counted as running for its grace period.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conn, reading, last, acked, first := s.conn, s.reading, s.last, s.acked, s.first
	s.mu.Unlock()

	s.wmu.Lock()
	// The event Listen read but Next has not returned is not acknowledged.
	if first == nil && last > acked {
		b, _ := json.Marshal(EventAck{Ack: last})
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		conn.WriteMessage(websocket.TextMessage, b)
	}
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	err := conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	s.wmu.Unlock()
	if err == nil {
		conn.SetReadDeadline(time.Now().Add(time.Second))
		if reading != nil {
			<-reading // Next's read ends with the deadline at the latest
		}
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				break
			}
		}
	}
	return conn.Close()
}
