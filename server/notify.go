package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

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

// Header keys in the canonical form http.Header.Set would store them in,
// computed once: Set canonicalises its key on every call, which was a
// tenth of the handler's time on the MPNS POST path.
var (
	keyNotificationStatus = http.CanonicalHeaderKey(mpns.HeaderNotificationStatus)
	keySubscriptionStatus = http.CanonicalHeaderKey(mpns.HeaderSubscriptionStatus)
	keyDeviceStatus       = http.CanonicalHeaderKey(mpns.HeaderDeviceConnectionStatus)
	keyMessageID          = http.CanonicalHeaderKey(mpns.HeaderMessageID)
	// Shared by every answer: headers are written, never changed in place.
	textPlain = []string{"text/plain; charset=utf-8"}
	connClose = []string{"close"}
)

// statusValues are the X-*Status tokens as header values, shared by every
// answer like textPlain.
var statusValues = func() map[string][]string {
	m := map[string][]string{}
	for _, v := range []string{mpns.StatusReceived, mpns.StatusQueueFull, mpns.StatusSuppressed, mpns.StatusDropped,
		mpns.SubscriptionActive, mpns.SubscriptionExpired,
		mpns.DeviceConnected, mpns.DeviceTempDisconnected, mpns.DeviceDisconnected, mpns.DeviceInactive} {
		m[v] = []string{v}
	}
	return m
}()

func statusValue(v string) []string {
	if vs, ok := statusValues[v]; ok {
		return vs
	}
	return []string{v}
}

func (o outcome) write(w http.ResponseWriter, messageID string) {
	h := w.Header()
	if o.Notification != "" {
		h[keyNotificationStatus] = statusValue(o.Notification)
	}
	if o.Subscription != "" {
		h[keySubscriptionStatus] = statusValue(o.Subscription)
	}
	if o.Device != "" {
		h[keyDeviceStatus] = statusValue(o.Device)
	}
	if messageID != "" {
		h[keyMessageID] = []string{messageID}
	}
	h["Content-Type"] = textPlain
	if o.unread {
		h["Connection"] = connClose
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
	var o outcome
	a, err := s.mpnsPost(w, r)
	if err != nil {
		ref := asRefusal(err, s.guard.lim.RetryAfter)
		o = writeMPNS(w, ref, messageID)
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			// Checked first: the arguments cost allocations per refusal,
			// and a flood is all refusals.
			s.log.Debug("notification refused", "status", o.Code, "notification", o.Notification, "refusal", ref.kind, "reason", ref.reason)
		}
	} else {
		o = mpnsReceived
		o.Device = a.device
		o.write(w, messageID)
	}
	s.metrics.notification(kindLabel(r.Header), o)
}

// echoedMessageID is the X-MessageID to echo, or "" when it is not fit to
// go back into a header.
func echoedMessageID(r *http.Request) string {
	var id string
	if v := r.Header[keyMessageID]; len(v) > 0 {
		id = v[0] // as Go's server stores it, without canonicalising again
	} else {
		id = headerAnyCase(r.Header, mpns.HeaderMessageID)
	}
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

// mpnsReceived is the answer to an MPNS notification queued for a device
// (its X-DeviceConnectionStatus set by the caller).
var mpnsReceived = outcome{Code: http.StatusOK, Notification: mpns.StatusReceived, Subscription: mpns.SubscriptionActive}

// mpnsPost decodes one MPNS POST and runs it through the pipeline.
func (s *Server) mpnsPost(w http.ResponseWriter, r *http.Request) (accepted, error) {
	if err := s.admit(w, r, 1, int64(s.guard.lim.MaxBodyBytes)); err != nil {
		return accepted{}, err
	}
	if err := s.authenticate(r); err != nil {
		return accepted{}, err
	}
	token, authenticated := tokenFromPath(r.URL.Path)
	if token == "" {
		return accepted{}, refuse(refNoChannel, "no such channel")
	}
	body, err := s.readBody(r, mpns.MaxBodySize+1)
	if errors.Is(err, errReadsBusy) {
		return accepted{}, &senderRefusal{kind: refSourceBusy, reason: err.Error(), retryAfter: s.guard.lim.RetryAfter, unread: true}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return accepted{}, refuse(refTooLarge, fmt.Sprintf("payload larger than %d bytes", s.guard.lim.MaxBodyBytes))
		}
		return accepted{}, refuse(refMalformed, "reading body: "+err.Error())
	}
	n, err := mpns.ParseRequest(r.Header, body)
	if err != nil {
		return accepted{}, refuse(refMalformed, err.Error())
	}
	return s.accept(r.Context(), s.mpnsSubmission(r, token, authenticated, n))
}

// mpnsSubmission is a parsed MPNS notification for the channel whose URI
// token is token; multicast and the Matrix gateway build theirs here too.
func (s *Server) mpnsSubmission(r *http.Request, token string, authenticated bool, n *mpns.Notification) *submission {
	sub := &submission{
		token: token, authenticated: authenticated,
		kind: n.Kind, class: mpns.ClassFor(n.Kind, n.Delay), messageID: n.MessageID, body: n.Body,
		// MPNS has its own power rules (suppressed), so the device's
		// minimum urgency never holds an MPNS notification.
		urgency:      mpns.UrgencyHigh,
		delay:        n.Delay.Duration(),
		req:          r,
		decoded:      n,
		checkChannel: mpnsCheckChannel,
		deviceState:  true,
		suppress:     mpnsSuppressed,
	}
	if n.Tile != nil {
		sub.mergeKey = n.Tile.ID
		sub.merge = mpnsMergeTile
	}
	return sub
}

func mpnsCheckChannel(s *Server, sub *submission, ch store.Channel, _ time.Time) error {
	if err := s.authorize(sub.req, ch); err != nil {
		return err
	}
	if isBrowserChannel(ch) {
		// A browser takes Web Push only (browser.go).
		return refuse(refForbidden, "this channel is a browser's push subscription: it takes only Web Push messages")
	}
	if ch.VAPIDKey != "" {
		// Restricted to one application server's signed Web Push
		// messages (RFC 8292 §4): an MPNS POST carries no signature.
		return refuse(refForbidden, "this channel takes only Web Push messages signed with its application server key")
	}
	return nil
}

func mpnsSuppressed(sub *submission, ch store.Channel, power string) string {
	return suppressed(sub.decoded.(*mpns.Notification), ch, power)
}

func mpnsMergeTile(sub *submission, ch store.Channel, older store.Queued) ([]byte, bool) {
	return mergeTile(older.Body, sub.decoded.(*mpns.Notification).Tile, ch.Domains)
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
