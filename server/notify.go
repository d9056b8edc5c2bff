package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/webpush"
)

// outcome is the answer to one MPNS POST.
type outcome struct {
	Code         int
	Notification string // X-NotificationStatus; "" = header not sent
	Subscription string // X-SubscriptionStatus
	Device       string // X-DeviceConnectionStatus
	Message      string // human-readable reason, sent as the body
	// unread: answered without reading the body. The connection is
	// closed after the answer, since net/http would otherwise first read
	// the rest of the body, which may never come.
	unread bool
}

func (o outcome) write(w http.ResponseWriter, messageID string) {
	h := w.Header()
	if o.Notification != "" {
		h.Set(mpns.HeaderNotificationStatus, o.Notification)
	}
	if o.Subscription != "" {
		h.Set(mpns.HeaderSubscriptionStatus, o.Subscription)
	}
	if o.Device != "" {
		h.Set(mpns.HeaderDeviceConnectionStatus, o.Device)
	}
	if messageID != "" {
		h.Set(mpns.HeaderMessageID, messageID)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if o.unread {
		h.Set("Connection", "close")
	}
	w.WriteHeader(o.Code)
	if o.Message != "" {
		io.WriteString(w, o.Message+"\n")
	}
}

// handleNotification is the channel URI endpoint: one POST, one
// notification, answered with MPNS's status code and headers.
func (s *Server) handleNotification(w http.ResponseWriter, r *http.Request) {
	if s.handleMessage(w, r) {
		return // a message resource under the channel URI (messages.go)
	}
	// X-MessageID is echoed whatever the outcome, as MPNS did; it is only
	// read here, and validated with the rest of the request below.
	messageID := echoedMessageID(r)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		outcome{Code: http.StatusMethodNotAllowed, Message: "only POST is allowed on a channel URI"}.write(w, messageID)
		return
	}
	if webpush.IsWebPush(r.Header) {
		s.handleWebPush(w, r)
		return
	}
	o, ok := s.admit(w, r, 1)
	if ok {
		if o, ok = s.authenticate(r); ok {
			o = s.accept(r)
		}
	}
	s.metrics.notification(kindLabel(r.Header), o)
	if o.Code != http.StatusOK {
		s.log.Debug("notification refused", "status", o.Code, "notification", o.Notification, "reason", o.Message)
	}
	if o.Code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", s.retryAfter())
	}
	o.write(w, messageID)
}

// echoedMessageID is the X-MessageID to echo, or "" when it is not fit to
// go back into a header.
func echoedMessageID(r *http.Request) string {
	id := headerAnyCase(r.Header, mpns.HeaderMessageID)
	if len(id) > mpns.MaxMessageIDLength {
		return ""
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return ""
		}
	}
	return id
}

func (s *Server) accept(r *http.Request) outcome {
	token, authenticated := tokenFromPath(r.URL.Path)
	if token == "" {
		return outcome{Code: http.StatusNotFound, Notification: mpns.StatusDropped, Subscription: mpns.SubscriptionExpired,
			Device: mpns.DeviceDisconnected, Message: "no such channel"}
	}

	body, err := s.readBody(r, mpns.MaxBodySize+1)
	if errors.Is(err, errReadsBusy) {
		o := unavailable(err.Error())
		o.unread = true
		return o
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return outcome{Code: http.StatusBadRequest, Message: fmt.Sprintf("payload larger than %d bytes", s.guard.lim.MaxBodyBytes)}
		}
		return outcome{Code: http.StatusBadRequest, Message: "reading body: " + err.Error()}
	}
	n, err := mpns.ParseRequest(r.Header, body)
	if err != nil {
		return outcome{Code: http.StatusBadRequest, Message: err.Error()}
	}
	return s.deliver(r, token, authenticated, n)
}

// deliver routes one parsed notification to the channel whose URI token
// is token; multicast calls it once per channel.
func (s *Server) deliver(r *http.Request, token string, authenticated bool, n *mpns.Notification) outcome {
	ctx := r.Context()
	ch, err := s.cfg.Store.ChannelByToken(ctx, token)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (ch.ServiceName != "") != authenticated) {
		return outcome{Code: http.StatusNotFound, Notification: mpns.StatusDropped, Subscription: mpns.SubscriptionExpired,
			Device: mpns.DeviceDisconnected, Message: "no such channel"}
	}
	if err != nil {
		s.log.Error("channel lookup failed", "err", err)
		return outcome{Code: http.StatusServiceUnavailable, Message: "store unavailable"}
	}
	if o, denied := s.authorize(r, ch); denied {
		return o
	}
	if isBrowserChannel(ch) {
		// A browser takes Web Push only (browser.go).
		return outcome{Code: http.StatusForbidden, Message: "this channel is a browser's push subscription: it takes only Web Push messages"}
	}
	if ch.VAPIDKey != "" {
		// Restricted to one application server's signed Web Push
		// messages (RFC 8292 §4): an MPNS POST carries no signature.
		return outcome{Code: http.StatusForbidden, Message: "this channel takes only Web Push messages signed with its application server key"}
	}
	// The slot is taken only now, for a notification to a channel that
	// exists: work the store will do.
	release, ok := s.guard.acquire()
	if !ok {
		return unavailable("too many requests in flight")
	}
	defer release()
	now := s.cfg.Clock.Now()
	conn := mpns.DeviceConnected
	var power string
	// A connected device's session knows its power level; only an away
	// device needs the store, for when it was last seen.
	if sess := s.session(ch.DeviceID); sess != nil {
		power = sess.powerLevel()
	} else {
		dev, err := s.cfg.Store.DeviceStatus(ctx, ch.DeviceID)
		if err != nil {
			s.log.Error("device lookup failed", "device", ch.DeviceID, "err", err)
			return outcome{Code: http.StatusServiceUnavailable, Message: "store unavailable"}
		}
		power = dev.Power
		conn = mpns.DeviceTempDisconnected
		if p := s.cfg.Presence; p != nil {
			// Connected on another node of the cluster, whose session
			// refreshes last-seen only now and then: never inactive.
			if elsewhere, err := p.HeldElsewhere(ctx, ch.DeviceID); err != nil {
				s.log.Warn("presence lookup failed", "device", ch.DeviceID, "err", err)
			} else if elsewhere {
				conn = mpns.DeviceConnected
			}
		}
		if conn != mpns.DeviceConnected && now.Sub(dev.LastSeen) > s.cfg.InactiveAfter {
			return outcome{Code: http.StatusPreconditionFailed, Notification: mpns.StatusDropped, Device: mpns.DeviceInactive,
				Message: "device inactive"}
		}
	}
	base := outcome{Code: http.StatusOK, Subscription: mpns.SubscriptionActive, Device: conn}
	if o, limited := s.limitChannel(ch, base); limited {
		return o
	}

	if reason := suppressed(n, ch, power); reason != "" {
		base.Notification, base.Message = mpns.StatusSuppressed, reason
		return base
	}

	q := store.Queued{
		DeviceID:   ch.DeviceID,
		ChannelID:  ch.ID,
		Kind:       string(n.Kind),
		Class:      mpns.ClassFor(n.Kind, n.Delay),
		MessageID:  n.MessageID,
		Body:       n.Body,
		AcceptedAt: now,
		DueAt:      now.Add(n.Delay.Duration()),
		// MPNS has its own power rules (suppressed above), so the
		// device's minimum urgency never holds an MPNS notification.
		Urgency: int(mpns.UrgencyHigh),
	}
	opts := store.EnqueueOptions{MaxDepth: s.cfg.QueueDepth}
	if n.Tile != nil {
		q.TileKey = ch.ID + "\x00" + n.Tile.ID
		opts.Merge = func(older store.Queued) ([]byte, bool) { return mergeTile(older.Body, n.Tile, ch.Domains) }
	}
	q, err = s.cfg.Store.Enqueue(ctx, q, opts)
	switch {
	case errors.Is(err, store.ErrQueueFull):
		base.Notification, base.Message = mpns.StatusQueueFull, "device queue full"
		return base
	case err != nil:
		s.log.Error("enqueue failed", "device", ch.DeviceID, "err", err)
		return outcome{Code: http.StatusServiceUnavailable, Message: "store unavailable"}
	}
	// The store's commit hook has handed it to the session already
	// (Server.committed).
	s.log.Debug("notification accepted", slog.String("device", ch.DeviceID), slog.Uint64("seq", q.Seq), slog.String("kind", q.Kind),
		slog.Uint64("merged", q.Merged))
	base.Notification = mpns.StatusReceived
	return base
}

// mergeTile merges a queued tile update with a later one to the same tile,
// when the device would end up in the same state applying the merge as
// applying both: the templates must mix, every remote image must come from
// a bound domain (else the device rejects the whole merged update, where
// it would have rejected only one), and the result must still fit a
// notification.
func mergeTile(olderBody []byte, later *mpns.Tile, domains []string) ([]byte, bool) {
	older, err := mpns.ParseTile(olderBody)
	if err != nil || !older.Mergeable(later) {
		return nil, false
	}
	for _, t := range []*mpns.Tile{older, later} {
		for _, img := range t.RemoteImages() {
			if !mpns.ImageAllowed(img, domains) {
				return nil, false
			}
		}
	}
	body := older.Merge(later).XML()
	if len(body) > mpns.MaxBodySize {
		return nil, false
	}
	return body, true
}

// suppressed says why the device's shell would not take n, or "".
func suppressed(n *mpns.Notification, ch store.Channel, power string) string {
	if power == "critical" {
		return "device power is critically low"
	}
	spec, _ := n.Kind.Spec()
	if spec.NeedsBind && !bound(ch, n.Kind) {
		return "channel not bound to " + string(n.Kind)
	}
	// A secondary tile is shown only while pinned.
	if n.Tile != nil && n.Tile.ID != "" && !slices.Contains(ch.Pinned, n.Tile.ID) {
		return "tile not pinned"
	}
	if spec.LowPowerSuppressed && power == "low" {
		return "device power is low"
	}
	return ""
}

// bound says whether ch is bound to the shell's handling of kind k; the
// channel record keeps one binding per kind that needs one.
func bound(ch store.Channel, k mpns.Kind) bool {
	switch k {
	case mpns.KindToast:
		return ch.Toast
	case mpns.KindTile:
		return ch.Tile
	}
	return false
}

// tokenFromPath extracts the channel token and whether the path is the
// authenticated one.
func tokenFromPath(p string) (token string, authenticated bool) {
	switch {
	case strings.HasPrefix(p, ThrottledPath):
		token = strings.TrimPrefix(p, ThrottledPath)
	case strings.HasPrefix(p, UnthrottledPath):
		token, authenticated = strings.TrimPrefix(p, UnthrottledPath), true
	}
	if token == "" || len(token) > 256 || strings.Contains(token, "/") {
		return "", false
	}
	return token, authenticated
}

// headerAnyCase finds a header whatever the case of its name, for senders
// that build header maps by hand.
func headerAnyCase(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
