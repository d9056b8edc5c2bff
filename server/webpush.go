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

// webPushRefused is RFC 8030's answer to a refused message. created is the
// 201 a message taken and then dropped (refSuppressed) gets, as if it had
// been queued: its Location and TTL.
func webPushRefused(r *senderRefusal, created webPushAnswer) webPushAnswer {
	a := webPushAnswer{message: r.reason, unread: r.unread}
	switch r.kind {
	case refNoChannel:
		a.code = http.StatusNotFound
	case refInactive:
		// The device has not been seen for a month: the subscription
		// expired (RFC 8030 §7.3).
		a.code = http.StatusGone
	case refMalformed:
		a.code = http.StatusBadRequest
	case refTooLarge:
		a.code = http.StatusRequestEntityTooLarge
	case refUnauthenticated:
		a.code, a.vapid = http.StatusUnauthorized, true
	case refForbidden:
		a.code = http.StatusForbidden
	case refRateLimited, refQuotaUsed, refQueueFull:
		a.code, a.retryAfter = http.StatusTooManyRequests, retryAfterHeader(r.retryAfter)
	case refSourceBusy:
		// The sender's own address is busy, not the service.
		a.code, a.retryAfter = http.StatusTooManyRequests, "1"
	case refSuppressed:
		created.message = ""
		return created
	default: // refUnavailable, and anything unknown
		a.code, a.retryAfter = http.StatusServiceUnavailable, retryAfterHeader(r.retryAfter)
	}
	return a
}

// isMPNS says whether a POST carries MPNS's own headers.
func isMPNS(h http.Header) bool {
	return headerAnyCase(h, mpns.HeaderTarget) != "" || headerAnyCase(h, mpns.HeaderNotificationClass) != ""
}

// handleWebPush is the channel URI endpoint for a POST that speaks Web
// Push (webpush.IsWebPush): RFC 8030's answers, never MPNS's.
func (s *Server) handleWebPush(w http.ResponseWriter, r *http.Request) {
	var a webPushAnswer
	created, err := s.webPush(w, r)
	if err != nil {
		ref := asRefusal(err, s.guard.lim.RetryAfter)
		a = webPushRefused(ref, created)
		if a.code != http.StatusCreated && s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.Debug("web push message refused", "status", a.code, "refusal", ref.kind, "reason", ref.reason)
		}
	} else {
		a = created
	}
	s.metrics.notification(string(mpns.KindWebPush), outcome{Code: a.code})
	a.write(w)
}

// webPush decodes a Web Push POST and runs it through the pipeline. The
// answer it returns is the 201 of a message taken, set once the channel is
// known.
func (s *Server) webPush(w http.ResponseWriter, r *http.Request) (created webPushAnswer, err error) {
	if isMPNS(r.Header) {
		return created, refuse(refMalformed, "the request carries both Web Push and MPNS headers")
	}
	if r.ContentLength > webpush.MaxBodySize {
		if n := headerBytes(r); n > s.guard.lim.MaxHeaderBytes {
			return created, refuse(refMalformed, "headers are "+strconv.Itoa(n)+" bytes; the limit is "+strconv.Itoa(s.guard.lim.MaxHeaderBytes))
		}
		return created, &senderRefusal{kind: refTooLarge, unread: true,
			reason: "body larger than " + strconv.Itoa(webpush.MaxBodySize) + " bytes"}
	}
	if err := s.admit(w, r, 1, webpush.MaxBodySize); err != nil {
		return created, err
	}
	token, authenticated := tokenFromPath(r.URL.Path)
	if token == "" || authenticated {
		// A channel for certificate-authenticated MPNS senders takes no
		// Web Push.
		return created, refuse(refNoChannel, "no such channel")
	}
	if !s.webPushTransportOK(r) {
		return created, refuse(refForbidden, "Web Push is taken over https only")
	}
	body, err := s.readBody(r, webpush.MaxBodySize+1)
	if errors.Is(err, errReadsBusy) {
		return created, &senderRefusal{kind: refSourceBusy, reason: err.Error(), retryAfter: time.Second, unread: true}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return created, refuse(refTooLarge, "body larger than "+strconv.Itoa(webpush.MaxBodySize)+" bytes")
		}
		return created, refuse(refMalformed, "reading body: "+err.Error())
	}
	m, err := webpush.ParseRequest(r.Header, body)
	if errors.Is(err, webpush.ErrTooLarge) {
		return created, refuse(refTooLarge, err.Error())
	}
	if err != nil {
		return created, refuse(refMalformed, err.Error())
	}

	created = webPushAnswer{code: http.StatusCreated, ttl: webpush.KeptTTL(m.TTL)}
	sub := &submission{
		token: token, kind: mpns.KindWebPush, messageID: newToken(16), body: m.Body,
		expiry: webPushExpiry,
		// Now or never (RFC 8030 §5.2): to a device that is away, never.
		nowOrNever:   m.TTL == 0,
		req:          r,
		decoded:      m,
		checkChannel: webPushCheckChannel,
	}
	// Parsed already; a device whose minimum urgency is above it is not
	// sent it until the minimum drops or it expires (urgency.go).
	if u, ok := mpns.ParseUrgency(m.Urgency); ok {
		sub.urgency = u
	}
	if m.Topic != "" {
		// The newer message replaces the queued one whole; its body is
		// opaque, so nothing is merged.
		sub.mergeKey = "topic\x00" + m.Topic
		sub.merge = func(sub *submission, _ store.Channel, _ store.Queued) ([]byte, bool) { return sub.body, true }
	}
	// A Web Push channel is always on the open path, named by the token
	// it was looked up by.
	created.location = MessageURI(s.channelURI(store.Channel{Token: token}), sub.messageID)
	_, err = s.accept(r.Context(), sub)
	return created, err
}

// webPushCheckChannel: a channel restricted to an application server
// (RFC 8292 §4) takes only messages with its vapid authorization.
func webPushCheckChannel(s *Server, sub *submission, ch store.Channel, now time.Time) error {
	if isBrowserChannel(ch) && !strings.EqualFold(strings.TrimSpace(headerAnyCase(sub.req.Header, webpush.HeaderContentEncoding)), "aes128gcm") {
		// A browser decrypts with what the message carries, and the
		// service keeps only the body: aesgcm's keys travel in headers.
		return refuse(refMalformed, "a browser's subscription takes Content-Encoding aes128gcm only")
	}
	if ch.VAPIDKey == "" {
		return nil
	}
	m := sub.decoded.(*webpush.Message)
	err := webpush.VerifyVAPID(m.Authorization, ch.VAPIDKey, s.webPushOrigin(), now)
	switch {
	case errors.Is(err, webpush.ErrVAPIDMissing):
		return refuse(refUnauthenticated, err.Error())
	case err != nil:
		return refuse(refForbidden, err.Error())
	}
	return nil
}

func webPushExpiry(sub *submission, now time.Time) time.Time {
	m := sub.decoded.(*webpush.Message)
	if m.TTL == 0 {
		// Written to the connected session at once; a device that drops
		// before it is written does not get it later.
		return now.Add(zeroTTLGrace)
	}
	return webpush.Expiry(now, m.TTL)
}

// zeroTTLGrace is how long a TTL 0 message to a connected device stays
// deliverable: long enough for its session to write it.
const zeroTTLGrace = 10 * time.Second

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
