// Package webpush is the vocabulary of the IETF Web Push protocol as a
// Herald channel URI takes it (RFC 8030 requests, RFC 8292 VAPID): which
// POSTs are Web Push, their TTL, Topic and Urgency headers, and the
// application server's signature. The service never decrypts a message
// (RFC 8291): the body is opaque and reaches the app byte for byte.
//
// The package performs no I/O and keeps no state, so the service and the
// fuzzer call the same parsers.
package webpush

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of RFC 8030 and RFC 8292.
const (
	HeaderTTL             = "TTL"
	HeaderTopic           = "Topic"
	HeaderUrgency         = "Urgency"
	HeaderContentEncoding = "Content-Encoding"
	HeaderAuthorization   = "Authorization"
	HeaderLocation        = "Location"
)

// MaxBodySize is the largest message body: RFC 8030 §7.2 forbids refusing
// 4096 bytes or fewer, and an RFC 8291 record of 4096 bytes is what
// sender libraries pad to.
const MaxBodySize = 4096

// MaxTTL is the longest a message is kept. RFC 8030 lets a service keep a
// message for less than asked and say so in the answer's TTL; 28 days is
// the npm web-push library's default TTL, so a sender using the default
// is not cut short, and a queue entry does not outlive the device's 30
// days of absence after which the service forgets it.
const MaxTTL = 28 * 24 * 60 * 60

// MaxTopicLength is RFC 8030 §5.4's limit on a Topic, in characters.
const MaxTopicLength = 32

// Urgency values (RFC 8030 §5.3), lowest first.
var Urgencies = []string{"very-low", "low", "normal", "high"}

// Sentinel errors. Every error of ParseRequest satisfies
// errors.Is(err, ErrBadRequest) as well as its own sentinel.
var (
	ErrBadRequest = errors.New("webpush: bad request")
	ErrTooLarge   = errors.New("webpush: body too large")
	ErrBadTTL     = errors.New("webpush: bad TTL")
	ErrBadTopic   = errors.New("webpush: bad Topic")
	ErrBadUrgency = errors.New("webpush: bad Urgency")
	ErrEmptyBody  = errors.New("webpush: empty body")
)

type requestError struct {
	kind error
	msg  string
}

func (e *requestError) Error() string   { return "webpush: " + e.msg }
func (e *requestError) Unwrap() []error { return []error{e.kind, ErrBadRequest} }

func newError(kind error, format string, args ...any) error {
	return &requestError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// Message is one validated Web Push POST.
type Message struct {
	// TTL is the lifetime the sender asked for, in seconds (0 = deliver
	// now or never), before any cap of the service.
	TTL     int
	Topic   string // "" when absent
	Urgency string // "normal" when absent
	// Authorization is the Authorization header as sent ("" when absent);
	// ParseVAPID reads it.
	Authorization string
	Body          []byte // a copy of the body as received
}

// IsWebPush says whether a POST speaks Web Push: it carries a TTL (both
// widespread sender libraries always send one), an RFC 8291 content
// encoding, or a VAPID or legacy WebPush authorization.
func IsWebPush(h http.Header) bool {
	// One pass over the map, not one per header name: every MPNS POST
	// asks this first, and ranging over a map costs more than the few
	// comparisons per header.
	for k, vs := range h {
		switch {
		case strings.EqualFold(k, HeaderTTL):
			return true
		case strings.EqualFold(k, HeaderContentEncoding):
			for _, v := range vs {
				switch strings.ToLower(strings.TrimSpace(v)) {
				case "aes128gcm", "aesgcm":
					return true
				}
			}
		case strings.EqualFold(k, HeaderAuthorization):
			for _, v := range vs {
				scheme, _, _ := strings.Cut(strings.TrimSpace(v), " ")
				if strings.EqualFold(scheme, "vapid") || strings.EqualFold(scheme, "WebPush") {
					return true
				}
			}
		}
	}
	return false
}

// ParseRequest validates the headers and body of a Web Push POST (one
// IsWebPush says is). Header names are matched without regard to case.
//
//   - a body above MaxBodySize is ErrTooLarge, an empty one ErrEmptyBody;
//   - TTL is required: one value of decimal digits (ErrBadTTL), at most
//     2^31-1 so that a number is a number and not an overflow;
//   - Topic, when present, is one value of 1-32 base64url characters
//     (ErrBadTopic);
//   - Urgency, when present, is one of Urgencies (ErrBadUrgency); several
//     values are refused, as RFC 8030 §5.3 says.
func ParseRequest(h http.Header, body []byte) (*Message, error) {
	if len(body) > MaxBodySize {
		return nil, newError(ErrTooLarge, "body is %d bytes; the limit is %d", len(body), MaxBodySize)
	}
	m := &Message{Urgency: "normal"}
	ttl, ok := values(h, HeaderTTL)
	switch {
	case !ok:
		return nil, newError(ErrBadTTL, "a Web Push message needs a TTL header")
	case len(ttl) != 1:
		return nil, newError(ErrBadTTL, "%d TTL values; one is allowed", len(ttl))
	}
	t := strings.TrimSpace(ttl[0])
	if t == "" || len(t) > 10 || strings.Trim(t, "0123456789") != "" {
		return nil, newError(ErrBadTTL, "TTL %q is not a number of seconds", ttl[0])
	}
	n, err := strconv.ParseInt(t, 10, 32)
	if err != nil {
		return nil, newError(ErrBadTTL, "TTL %q is out of range", ttl[0])
	}
	m.TTL = int(n)

	if topic, ok := values(h, HeaderTopic); ok {
		if len(topic) != 1 {
			return nil, newError(ErrBadTopic, "%d Topic values; one is allowed", len(topic))
		}
		if !validTopic(topic[0]) {
			return nil, newError(ErrBadTopic, "Topic %q is not 1-%d base64url characters", clip(topic[0]), MaxTopicLength)
		}
		m.Topic = topic[0]
	}
	if urg, ok := values(h, HeaderUrgency); ok {
		if len(urg) != 1 || strings.Contains(urg[0], ",") {
			return nil, newError(ErrBadUrgency, "several Urgency values; one is allowed")
		}
		u := strings.ToLower(strings.TrimSpace(urg[0]))
		known := false
		for _, v := range Urgencies {
			known = known || u == v
		}
		if !known {
			return nil, newError(ErrBadUrgency, "Urgency %q is not very-low, low, normal or high", clip(urg[0]))
		}
		m.Urgency = u
	}
	if az, ok := values(h, HeaderAuthorization); ok {
		if len(az) != 1 {
			return nil, newError(ErrBadRequest, "%d Authorization values; one is allowed", len(az))
		}
		m.Authorization = az[0]
	}
	if len(body) == 0 {
		return nil, newError(ErrEmptyBody, "a Web Push message has an empty body")
	}
	m.Body = append([]byte(nil), body...)
	return m, nil
}

// KeptTTL is how long the service keeps a message asked to live ttl
// seconds: at most MaxTTL.
func KeptTTL(ttl int) int { return min(max(ttl, 0), MaxTTL) }

// Expiry is when a message accepted at now with TTL ttl expires; the zero
// time for TTL 0, which is never queued for later.
func Expiry(now time.Time, ttl int) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return now.Add(time.Duration(KeptTTL(ttl)) * time.Second)
}

func validTopic(t string) bool {
	if t == "" || len(t) > MaxTopicLength {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// values returns every value of the named header, matching the name
// without regard to case, and whether it is present.
func values(h http.Header, name string) ([]string, bool) {
	var out []string
	present := false
	for k, vs := range h {
		if strings.EqualFold(k, name) {
			present = true
			out = append(out, vs...)
		}
	}
	return out, present
}

// clip shortens a sender's value for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
