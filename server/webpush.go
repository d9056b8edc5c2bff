package server

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/webpush"
)

// webPushAnswer is the answer to one Web Push POST.
type webPushAnswer struct {
	code       int
	location   string
	ttl        int // the TTL kept, sent on 201
	retryAfter string
	vapid      bool // 401: ask for vapid
	message    string
	unread     bool
}

func (a webPushAnswer) write(w http.ResponseWriter) {
	h := w.Header()
	if a.code == http.StatusCreated {
		h.Set(webpush.HeaderLocation, a.location)
		h.Set(webpush.HeaderTTL, strconv.Itoa(a.ttl))
	}
	if a.retryAfter != "" {
		h.Set("Retry-After", a.retryAfter)
	}
	if a.vapid {
		h.Set("WWW-Authenticate", "vapid")
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if a.unread {
		h.Set("Connection", "close")
	}
	w.WriteHeader(a.code)
	if a.message != "" {
		io.WriteString(w, a.message+"\n")
	}
}

// isMPNS says whether a POST carries MPNS's own headers.
func isMPNS(h http.Header) bool {
	return headerAnyCase(h, mpns.HeaderTarget) != "" || headerAnyCase(h, mpns.HeaderNotificationClass) != ""
}

// handleWebPush is the channel URI endpoint for a POST that speaks Web
// Push (webpush.IsWebPush): RFC 8030's answers, never MPNS's.
func (s *Server) handleWebPush(w http.ResponseWriter, r *http.Request) {
	a := s.webPush(w, r)
	s.metrics.notification(string(mpns.KindWebPush), outcome{Code: a.code})
	if a.code != http.StatusCreated {
		s.log.Debug("web push message refused", "status", a.code, "reason", a.message)
	}
	a.write(w)
}

func (s *Server) webPush(w http.ResponseWriter, r *http.Request) webPushAnswer {
	bad := func(msg string) webPushAnswer { return webPushAnswer{code: http.StatusBadRequest, message: msg} }
	gone := webPushAnswer{code: http.StatusNotFound, message: "no such channel"}
	if isMPNS(r.Header) {
		return bad("the request carries both Web Push and MPNS headers")
	}
	lim := s.guard.lim
	if n := headerBytes(r); n > lim.MaxHeaderBytes {
		return bad("headers are " + strconv.Itoa(n) + " bytes; the limit is " + strconv.Itoa(lim.MaxHeaderBytes))
	}
	if r.ContentLength > webpush.MaxBodySize {
		return webPushAnswer{code: http.StatusRequestEntityTooLarge, unread: true,
			message: "body larger than " + strconv.Itoa(webpush.MaxBodySize) + " bytes"}
	}
	r.Body = http.MaxBytesReader(w, r.Body, webpush.MaxBodySize)
	if s.guard.shedding() {
		return webPushAnswer{code: http.StatusServiceUnavailable, retryAfter: s.retryAfter(), message: "the store is slow; shedding load"}
	}
	if !s.guard.allowSender(senderAddr(r), 1) {
		return webPushAnswer{code: http.StatusTooManyRequests, retryAfter: "1",
			message: "more than " + strconv.FormatFloat(lim.SenderRate, 'g', -1, 64) + " messages per second from this address"}
	}
	token, authenticated := tokenFromPath(r.URL.Path)
	if token == "" || authenticated {
		// A channel for certificate-authenticated MPNS senders takes no
		// Web Push.
		return gone
	}
	if !s.webPushTransportOK(r) {
		return webPushAnswer{code: http.StatusForbidden, message: "Web Push is taken over https only"}
	}
	body, err := s.readBody(r, webpush.MaxBodySize+1)
	if errors.Is(err, errReadsBusy) {
		return webPushAnswer{code: http.StatusTooManyRequests, retryAfter: "1", unread: true, message: err.Error()}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return webPushAnswer{code: http.StatusRequestEntityTooLarge, message: "body larger than " + strconv.Itoa(webpush.MaxBodySize) + " bytes"}
		}
		return bad("reading body: " + err.Error())
	}
	m, err := webpush.ParseRequest(r.Header, body)
	if errors.Is(err, webpush.ErrTooLarge) {
		return webPushAnswer{code: http.StatusRequestEntityTooLarge, message: err.Error()}
	}
	if err != nil {
		return bad(err.Error())
	}

	ctx := r.Context()
	ch, err := s.cfg.Store.ChannelByToken(ctx, token)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ch.ServiceName != "") {
		return gone
	}
	if err != nil {
		s.log.Error("channel lookup failed", "err", err)
		return webPushAnswer{code: http.StatusServiceUnavailable, retryAfter: s.retryAfter(), message: "store unavailable"}
	}
	if isBrowserChannel(ch) && !strings.EqualFold(strings.TrimSpace(headerAnyCase(r.Header, webpush.HeaderContentEncoding)), "aes128gcm") {
		// A browser decrypts with what the message carries, and the
		// service keeps only the body: aesgcm's keys travel in headers.
		return bad("a browser's subscription takes Content-Encoding aes128gcm only")
	}
	now := s.cfg.Clock.Now()
	if ch.VAPIDKey != "" {
		if err := webpush.VerifyVAPID(m.Authorization, ch.VAPIDKey, s.webPushOrigin(), now); err != nil {
			if errors.Is(err, webpush.ErrVAPIDMissing) {
				return webPushAnswer{code: http.StatusUnauthorized, vapid: true, message: err.Error()}
			}
			return webPushAnswer{code: http.StatusForbidden, message: err.Error()}
		}
	}
	release, ok := s.guard.acquire()
	if !ok {
		return webPushAnswer{code: http.StatusServiceUnavailable, retryAfter: s.retryAfter(), message: "too many requests in flight"}
	}
	defer release()
	if o, limited := s.limitChannel(ch, outcome{}); limited {
		return webPushAnswer{code: http.StatusTooManyRequests, retryAfter: channelRetryAfter(o.Message, now), message: o.Message}
	}

	id := newToken(16)
	a := webPushAnswer{code: http.StatusCreated, location: MessageURI(s.channelURI(ch), id), ttl: webpush.KeptTTL(m.TTL)}
	if m.TTL == 0 && !s.connected(r, ch.DeviceID) {
		// Now or never (RFC 8030 §5.2): the device is away, so never.
		s.log.Debug("web push message with TTL 0 dropped: device away", "device", ch.DeviceID)
		return a
	}
	q := store.Queued{
		DeviceID:   ch.DeviceID,
		ChannelID:  ch.ID,
		Kind:       string(mpns.KindWebPush),
		MessageID:  id,
		Body:       m.Body,
		AcceptedAt: now,
		DueAt:      now,
		ExpiresAt:  webpush.Expiry(now, m.TTL),
	}
	// Parsed already; a device whose minimum urgency is above it is not
	// sent it until the minimum drops or it expires (urgency.go).
	if u, ok := mpns.ParseUrgency(m.Urgency); ok {
		q.Urgency = int(u)
	}
	if m.TTL == 0 {
		// Written to the connected session at once; a device that drops
		// before it is written does not get it later.
		q.ExpiresAt = now.Add(zeroTTLGrace)
	}
	opts := store.EnqueueOptions{MaxDepth: s.cfg.QueueDepth}
	if m.Topic != "" {
		// The newer message replaces the queued one whole; its body is
		// opaque, so nothing is merged.
		q.TileKey = ch.ID + "\x00topic\x00" + m.Topic
		opts.Merge = func(store.Queued) ([]byte, bool) { return m.Body, true }
	}
	s.startExpiringMessages()
	q, err = s.cfg.Store.Enqueue(ctx, q, opts)
	switch {
	case errors.Is(err, store.ErrQueueFull):
		return webPushAnswer{code: http.StatusTooManyRequests, retryAfter: s.retryAfter(), message: "device queue full"}
	case err != nil:
		s.log.Error("enqueue failed", "device", ch.DeviceID, "err", err)
		return webPushAnswer{code: http.StatusServiceUnavailable, retryAfter: s.retryAfter(), message: "store unavailable"}
	}
	s.log.Debug("web push message accepted", slog.String("device", ch.DeviceID), slog.Uint64("seq", q.Seq),
		slog.Uint64("replaced", q.Merged), slog.Int("ttl", a.ttl))
	return a
}

// zeroTTLGrace is how long a TTL 0 message to a connected device stays
// deliverable: long enough for its session to write it.
const zeroTTLGrace = 10 * time.Second

// connected says whether the device has a live session, here or on
// another node.
func (s *Server) connected(r *http.Request, deviceID string) bool {
	if s.session(deviceID) != nil {
		return true
	}
	if p := s.cfg.Presence; p != nil {
		elsewhere, err := p.HeldElsewhere(r.Context(), deviceID)
		return err == nil && elsewhere
	}
	return false
}

// webPushTransportOK: Web Push senders speak https, so the service takes
// Web Push over TLS, over plain http only when its public URL is https
// (a proxy in front ends TLS), or from a loopback sender (development).
func (s *Server) webPushTransportOK(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if u, err := url.Parse(s.cfg.PublicURL); err == nil && u.Scheme == "https" {
		return true
	}
	ip := net.ParseIP(senderAddr(r))
	return ip != nil && ip.IsLoopback()
}

// webPushOrigin is the origin a VAPID token's aud must name: the public
// URL's, the origin of the channel URIs senders were given.
func (s *Server) webPushOrigin() string {
	u, err := url.Parse(s.cfg.PublicURL)
	if err != nil {
		return s.cfg.PublicURL
	}
	return u.Scheme + "://" + u.Host
}

// channelRetryAfter is Retry-After for a channel over its rate or quota:
// a second for the rate; a daily quota refills at the next UTC midnight,
// which a sender retrying every second would only hammer toward.
func channelRetryAfter(why string, now time.Time) string {
	if !strings.Contains(why, "per second") {
		midnight := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
		return strconv.Itoa(int(midnight.Sub(now).Seconds()) + 1)
	}
	return "1"
}
