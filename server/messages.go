package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/webpush"
)

// MessagesSegment joins a channel URI and a message id into the message
// resource <channel URI>/messages/<message id>: GET says what became of
// the notification, DELETE cancels it while it is queued. Whoever holds
// the channel URI may ask; nobody else can name the resource. A channel
// restricted to an application server key answers only its vapid
// authorization, as its POSTs do.
const MessagesSegment = "/messages/"

// MessageURI is the message resource of a notification on a channel.
func MessageURI(channelURI, messageID string) string {
	return channelURI + MessagesSegment + messageID
}

// messageRefused is the status of a message resource request refused
// before its message was looked at, its headers set on w: a client of
// the resource is an HTTP client, not an MPNS sender, so a rate is 429.
func messageRefused(w http.ResponseWriter, r *senderRefusal) int {
	switch r.kind {
	case refMalformed, refTooLarge:
		return http.StatusBadRequest
	case refNoChannel:
		return http.StatusNotFound
	case refUnauthenticated:
		return http.StatusUnauthorized
	case refForbidden:
		return http.StatusForbidden
	case refRateLimited, refQuotaUsed:
		w.Header().Set("Retry-After", retryAfterHeader(r.retryAfter))
		return http.StatusTooManyRequests
	}
	w.Header().Set("Retry-After", retryAfterHeader(r.retryAfter))
	return http.StatusServiceUnavailable
}

// messageStatus is the JSON a message resource answers with.
type messageStatus struct {
	ID     string `json:"id"`
	Status string `json:"status"` // queued, delivered, cancelled, expired or unknown
	// At is when it was accepted (queued) or entered its final state.
	At string `json:"at,omitempty"`
	// Urgency is a queued notification's urgency; Held says the device's
	// minimum urgency is above it, so it waits for that to drop.
	Urgency string `json:"urgency,omitempty"`
	Held    bool   `json:"held,omitempty"`
	Message string `json:"message,omitempty"`
}

// messagePath splits a message resource's path into the channel URI's
// path and the message id; ok is false for any other path.
func messagePath(p string) (channelPath, id string, ok bool) {
	i := strings.LastIndex(p, MessagesSegment)
	if i < 0 {
		return "", "", false
	}
	channelPath, id = p[:i], p[i+len(MessagesSegment):]
	return channelPath, id, validMessageID(id)
}

// validMessageID: what an MPNS X-MessageID may be (printable ASCII, at
// most mpns.MaxMessageIDLength bytes) and can stand in one path segment.
func validMessageID(id string) bool {
	if id == "" || len(id) > mpns.MaxMessageIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= 0x20 || id[i] > 0x7e || id[i] == '/' {
			return false
		}
	}
	return true
}

// handleMessage serves a message resource. It reports false when the path
// is not one, for the channel URI's handler to answer.
func (s *Server) handleMessage(w http.ResponseWriter, r *http.Request) bool {
	channelPath, id, ok := messagePath(r.URL.Path)
	if !ok {
		if strings.Contains(r.URL.Path, MessagesSegment) {
			writeStatus(w, http.StatusNotFound, messageStatus{ID: "", Status: "unknown", Message: "not a message resource"})
			return true
		}
		return false
	}
	answer := func(code int, st messageStatus) {
		st.ID = id
		writeStatus(w, code, st)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodDelete {
		w.Header().Set("Allow", "GET, HEAD, DELETE")
		answer(http.StatusMethodNotAllowed, messageStatus{Status: "unknown", Message: "GET or DELETE a message resource"})
		return true
	}
	err := s.admit(w, r, 1, int64(s.guard.lim.MaxBodyBytes))
	if err == nil {
		err = s.authenticate(r)
	}
	if err != nil {
		ref := asRefusal(err, s.guard.lim.RetryAfter)
		answer(messageRefused(w, ref), messageStatus{Status: "unknown", Message: ref.reason})
		return true
	}
	token, authenticated := tokenFromPath(channelPath)
	ctx := r.Context()
	var ch store.Channel
	err = store.ErrNotFound
	if token != "" {
		ch, err = s.cfg.Store.ChannelByToken(ctx, token)
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && (ch.ServiceName != "") != authenticated) {
		answer(http.StatusNotFound, messageStatus{Status: "unknown", Message: "no such channel"})
		return true
	}
	if err != nil {
		s.log.Error("channel lookup failed", "err", err)
		w.Header().Set("Retry-After", s.retryAfter())
		answer(http.StatusServiceUnavailable, messageStatus{Status: "unknown", Message: errStoreUnavailable})
		return true
	}
	if err := s.authorize(r, ch); err != nil {
		ref := asRefusal(err, s.guard.lim.RetryAfter)
		answer(messageRefused(w, ref), messageStatus{Status: "unknown", Message: ref.reason})
		return true
	}
	if ch.VAPIDKey != "" {
		// A restricted channel's messages are its application server's
		// to follow and cancel, as only it may post them: the same
		// vapid authorization as the POST (RFC 8292 §4).
		err := webpush.VerifyVAPID(r.Header.Get(webpush.HeaderAuthorization), ch.VAPIDKey, s.webPushOrigin(), s.cfg.Clock.Now())
		if n := len(r.Header.Values(webpush.HeaderAuthorization)); n > 1 {
			err = fmt.Errorf("%w: %d Authorization headers; one is allowed", webpush.ErrVAPIDInvalid, n)
		}
		if err != nil {
			code := http.StatusForbidden
			if errors.Is(err, webpush.ErrVAPIDMissing) {
				code = http.StatusUnauthorized
				w.Header().Set("WWW-Authenticate", "vapid")
			}
			answer(code, messageStatus{Status: "unknown", Message: err.Error()})
			return true
		}
	}
	if r.Method == http.MethodDelete {
		code, st := s.cancelMessage(ctx, ch, id)
		if code == http.StatusNoContent {
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(code)
			return true
		}
		answer(code, st)
		return true
	}
	code, st := s.messageState(ctx, ch, id)
	answer(code, st)
	return true
}

// messageState reads a notification's state: 200 while queued or once
// delivered, 410 once cancelled or expired, 404 when the service knows
// nothing of it.
func (s *Server) messageState(ctx context.Context, ch store.Channel, id string) (int, messageStatus) {
	st, err := s.cfg.Store.MessageStatus(ctx, ch.DeviceID, ch.ID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, messageStatus{Status: "unknown",
			Message: "never accepted on this channel, or its outcome was forgotten (after " + store.OutcomeRetention.String() + ")"}
	case err != nil:
		s.log.Error("message status failed", "channel", ch.ID, "err", err)
		return http.StatusServiceUnavailable, messageStatus{Status: "unknown", Message: errStoreUnavailable}
	}
	out := messageStatus{Status: string(st.State), At: st.At.UTC().Format(time.RFC3339Nano)}
	switch st.State {
	case store.MessageQueued:
		out.Urgency = mpns.Urgency(st.Urgency).String()
		if sess := s.session(ch.DeviceID); sess != nil {
			out.Held = sess.heldBack(st.Urgency)
		}
		return http.StatusOK, out
	case store.MessageDelivered:
		return http.StatusOK, out
	}
	return http.StatusGone, out
}

// cancelMessage deletes a queued notification: 204, or 409 when it has
// been written to the device already (it may be applied, and only the
// device's ack says), 410 when it has left the queue and its outcome is
// known, 404 when nothing is known of it.
//
// With the device connected here, the session's state is held while the
// notification is deleted (its mu, which its writer holds to take what it
// writes), so it is either written before or never: the session's copy
// of the queue loses it in the same step. A device
// connected to another node of a cluster keeps its copy until its writer
// next reads the store; a cancel that races its write there may come too
// late, and the status then says delivered once the device acknowledges.
func (s *Server) cancelMessage(ctx context.Context, ch store.Channel, id string) (int, messageStatus) {
	sess := s.session(ch.DeviceID)
	if sess != nil {
		sess.mu.Lock()
		defer sess.mu.Unlock()
	}
	st, err := s.cfg.Store.MessageStatus(ctx, ch.DeviceID, ch.ID, id)
	if err == nil && st.State == store.MessageQueued && sess != nil {
		if sess.st.written(st.Seq) {
			return http.StatusConflict, messageStatus{Status: "queued", At: st.At.UTC().Format(time.RFC3339Nano),
				Message: "already written to the device; waiting for its acknowledgement"}
		}
	}
	if err == nil && st.State == store.MessageQueued {
		err = s.cfg.Store.CancelMessage(ctx, ch.DeviceID, ch.ID, id)
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && st.State != store.MessageQueued) {
		// Gone since, or never there: a delivered one is gone too.
		code, out := s.messageState(ctx, ch, id)
		if code == http.StatusOK {
			code = http.StatusGone
		}
		return code, out
	}
	if err != nil {
		s.log.Error("cancel failed", "channel", ch.ID, "err", err)
		return http.StatusServiceUnavailable, messageStatus{Status: "unknown", Message: errStoreUnavailable}
	}
	if sess != nil {
		sess.forget(ch.ID, id)
	}
	return http.StatusNoContent, messageStatus{}
}

func writeStatus(w http.ResponseWriter, code int, st messageStatus) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(st)
}
