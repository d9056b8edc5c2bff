package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Handlers are a NotificationChannel's callbacks, HttpNotificationChannel's
// events. Any may be nil. They are called one at a time, in the order the
// daemon queued the events, from the channel's own goroutine; an event is
// acknowledged to the daemon only after its callback returned, so an app
// that crashes in a callback gets the event again when it comes back.
type Handlers struct {
	// ChannelURIUpdated: the channel has a URI (after Open) or a new one;
	// send it to the app's cloud service (ChannelUriUpdated).
	ChannelURIUpdated func(uri string)
	// ConnectionStatusChanged: the device's link to the notification
	// service went up or down.
	ConnectionStatusChanged func(connected bool)
	// ErrorOccurred: see ChannelError's kinds.
	ErrorOccurred func(ChannelError)
	// HTTPNotificationReceived: a raw notification (HttpNotificationReceived).
	HTTPNotificationReceived func(RawNotification)
	// WebPushReceived: a Web Push message, its body still encrypted
	// (RFC 8291 aes128gcm) for the app's own keys.
	WebPushReceived func(RawNotification)
	// ShellToastNotificationReceived: a toast that arrived while the app was
	// in the foreground, so the shell did not show it.
	ShellToastNotificationReceived func(ToastNotification)
}

// ChannelError is what ErrorOccurred reports. Kind is one of the Error*
// constants, as ChannelErrorType named them.
type ChannelError struct {
	Kind      string
	Message   string
	MessageID string // the notification concerned, if any
	Power     string // the new power level, for ErrorPowerLevelChanged
}

func (e ChannelError) Error() string { return "herald: " + e.Kind + ": " + e.Message }

// RawNotification is a raw notification's payload.
type RawNotification struct {
	MessageID string
	Body      []byte
}

// ToastNotification is a toast received in the foreground.
type ToastNotification struct {
	MessageID string
	Text1     string
	Text2     string
	Param     string
}

// ChannelOptions describe a NotificationChannel.
type ChannelOptions struct {
	// Name is the channel's name (default "default"); an app has one.
	Name string
	// ServiceName is the authenticated sender's service name (the CN of its
	// client certificate); "" for an unauthenticated channel.
	ServiceName string
	// Foreground makes toasts come to ShellToastNotificationReceived
	// instead of the shell while the channel is open.
	Foreground bool
	Handlers   Handlers
}

// NotificationChannel is an app's push channel, Herald's
// HttpNotificationChannel. Create it with NewChannel (or FindChannel), then
// Open it; while it is open the app counts as running and its handlers are
// called. Stop ends that without closing the channel (the app exits);
// Close closes the channel for good.
type NotificationChannel struct {
	c    *Client
	app  string
	opts ChannelOptions

	mu      sync.Mutex
	info    Channel
	stream  *Stream
	cancel  context.CancelFunc
	done    chan struct{}
	stopped bool
}

// NewChannel prepares appID's channel; nothing happens until Open.
func (c *Client) NewChannel(appID string, opts ChannelOptions) *NotificationChannel {
	return &NotificationChannel{c: c, app: appID, opts: opts}
}

// FindChannel returns appID's existing channel with its name and shell
// bindings, not yet open (call Open to receive its events), or an error
// matching ErrNotOpened when the app has none (HttpNotificationChannel.Find
// returning null).
func (c *Client) FindChannel(ctx context.Context, appID string, h Handlers) (*NotificationChannel, error) {
	info, err := c.Find(ctx, appID)
	if err != nil {
		return nil, err
	}
	return &NotificationChannel{c: c, app: appID, info: info,
		opts: ChannelOptions{Name: info.Name, ServiceName: info.ServiceName, Handlers: h}}, nil
}

// SetForeground chooses, before Open, whether foreground toasts come to
// the app.
func (ch *NotificationChannel) SetForeground(on bool) { ch.opts.Foreground = on }

// App returns the app id.
func (ch *NotificationChannel) App() string { return ch.app }

// Info returns the channel as last seen.
func (ch *NotificationChannel) Info() Channel {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.info
}

// ChannelURI returns the channel's URI, "" before Open.
func (ch *NotificationChannel) ChannelURI() string { return ch.Info().URI }

// IsShellToastBound reports whether the shell shows the channel's toasts.
func (ch *NotificationChannel) IsShellToastBound() bool { return ch.Info().Toast }

// IsShellTileBound reports whether tile notifications update the app's tiles.
func (ch *NotificationChannel) IsShellTileBound() bool { return ch.Info().Tile }

// Open opens the channel (or finds it, if the app has it already), starts
// its event stream and calls ChannelURIUpdated with its URI. When the
// daemon cannot reach the notification service, Open calls ErrorOccurred
// with ErrorChannelOpenFailed and returns an error matching
// ErrChannelOpenFailed. A different channel name than the app's existing
// channel is ErrChannelExists; a device with 30 channels already is
// ErrQuotaExceeded. Open on an open channel only refreshes its info.
func (ch *NotificationChannel) Open(ctx context.Context) error {
	info, err := ch.c.Open(ctx, ch.app, OpenRequest{Channel: ch.opts.Name, ServiceName: ch.opts.ServiceName})
	if err != nil {
		if errors.Is(err, ErrChannelOpenFailed) {
			ch.emitError(ChannelError{Kind: ErrorChannelOpenFailed, Message: err.Error()})
		}
		return err
	}
	ch.mu.Lock()
	ch.info = info
	running := ch.stream != nil
	ch.mu.Unlock()
	if running {
		return nil
	}
	stream, err := ch.c.Listen(ctx, ch.app, ListenOptions{Foreground: ch.opts.Foreground, Reconnect: true})
	if err != nil {
		return fmt.Errorf("herald: open %s: event stream: %w", ch.app, err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	ch.mu.Lock()
	ch.stream, ch.cancel, ch.done, ch.stopped = stream, cancel, make(chan struct{}), false
	done := ch.done
	ch.mu.Unlock()
	if f := ch.opts.Handlers.ChannelURIUpdated; f != nil {
		f(info.URI)
	}
	go func() {
		defer close(done)
		ch.dispatch(sctx, stream)
	}()
	return nil
}

// dispatch calls the handlers for each event until the stream ends.
func (ch *NotificationChannel) dispatch(ctx context.Context, s *Stream) {
	h := ch.opts.Handlers
	for {
		e, err := s.Next(ctx)
		if err != nil {
			ch.mu.Lock()
			stopped := ch.stopped
			ch.mu.Unlock()
			if !stopped && ctx.Err() == nil {
				// Another stream for the app took over, or the stream
				// broke for good.
				ch.emitError(ChannelError{Kind: ErrorUnknown, Message: err.Error()})
			}
			return
		}
		switch e.Type {
		case EventRaw:
			if h.HTTPNotificationReceived != nil {
				h.HTTPNotificationReceived(RawNotification{MessageID: e.MessageID, Body: e.Body})
			}
		case EventWebPush:
			if h.WebPushReceived != nil {
				h.WebPushReceived(RawNotification{MessageID: e.MessageID, Body: e.Body})
			}
		case EventToast:
			if h.ShellToastNotificationReceived != nil {
				h.ShellToastNotificationReceived(ToastNotification{MessageID: e.MessageID, Text1: e.Text1, Text2: e.Text2, Param: e.Param})
			}
		case EventURI:
			ch.mu.Lock()
			changed := ch.info.URI != e.URI
			ch.info.URI = e.URI
			ch.mu.Unlock()
			if changed && h.ChannelURIUpdated != nil {
				h.ChannelURIUpdated(e.URI)
			}
		case EventStatus:
			if e.Connected != nil && h.ConnectionStatusChanged != nil {
				h.ConnectionStatusChanged(*e.Connected)
			}
		case EventError:
			kind := e.ErrorKind
			if kind == "" {
				kind = ErrorUnknown
			}
			ch.emitError(ChannelError{Kind: kind, Message: e.Message, MessageID: e.MessageID, Power: e.Power})
		}
	}
}

func (ch *NotificationChannel) emitError(e ChannelError) {
	if f := ch.opts.Handlers.ErrorOccurred; f != nil {
		f(e)
	}
}

func (ch *NotificationChannel) bind(ctx context.Context, req BindRequest) error {
	info, err := ch.c.Bind(ctx, ch.app, req)
	if err != nil {
		return err
	}
	ch.mu.Lock()
	ch.info = info
	ch.mu.Unlock()
	return nil
}

// BindToShellToast lets the shell show the channel's toasts.
func (ch *NotificationChannel) BindToShellToast(ctx context.Context) error {
	t := true
	return ch.bind(ctx, BindRequest{Toast: &t})
}

// UnbindToShellToast stops toasts; senders get Suppressed.
func (ch *NotificationChannel) UnbindToShellToast(ctx context.Context) error {
	f := false
	return ch.bind(ctx, BindRequest{Toast: &f})
}

// BindToShellTile lets tile notifications update the app's tiles, with
// remote images only from allowedDomains (base URIs such as
// "https://img.example.com/"); a tile with an image from elsewhere is
// rejected with ErrorMessageBadContent.
func (ch *NotificationChannel) BindToShellTile(ctx context.Context, allowedDomains ...string) error {
	t := true
	d := slices.Clone(allowedDomains)
	if d == nil {
		d = []string{}
	}
	return ch.bind(ctx, BindRequest{Tile: &t, Domains: &d})
}

// UnbindToShellTile stops tile updates; senders get Suppressed.
func (ch *NotificationChannel) UnbindToShellTile(ctx context.Context) error {
	f := false
	return ch.bind(ctx, BindRequest{Tile: &f})
}

// Stop ends the event stream cleanly, as an app that exits: the channel
// stays open and its URI keeps working, raw notifications go to the app's
// background handler (or are dropped) and toasts to the shell. It waits
// for the handler goroutine, so it must not be called from a handler.
func (ch *NotificationChannel) Stop() error {
	ch.mu.Lock()
	s, cancel, done := ch.stream, ch.cancel, ch.done
	ch.stream, ch.stopped = nil, true
	ch.mu.Unlock()
	if s == nil {
		return nil
	}
	err := s.Close()
	cancel()
	<-done
	return err
}

// Close stops the event stream and closes the channel: its URI answers
// 404 Expired from then on.
func (ch *NotificationChannel) Close(ctx context.Context) error {
	stopErr := ch.Stop()
	if err := ch.c.Close(ctx, ch.app); err != nil {
		return err
	}
	ch.mu.Lock()
	ch.info = Channel{}
	ch.mu.Unlock()
	return stopErr
}
