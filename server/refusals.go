package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldpush/herald/mpns"
)

// refusalKind is why a submission was not taken (or taken and dropped).
// Every sender protocol answers each kind its own way (renderers below and
// in each protocol's file); none of them reads a refusal's text.
type refusalKind uint8

const (
	// refNoChannel: the URI names no channel this sender may reach.
	refNoChannel refusalKind = iota + 1
	// refMalformed: the request cannot be read as the protocol says.
	refMalformed
	// refTooLarge: the body is past the protocol's or the service's limit.
	refTooLarge
	// refUnauthenticated: the channel needs a credential the request
	// lacks (an MPNS client certificate, a Web Push vapid token).
	refUnauthenticated
	// refForbidden: the credential is not the channel's, or the channel
	// takes only another protocol's messages.
	refForbidden
	// refRateLimited: over the sender address's or the channel's rate;
	// retryAfter says when a token is back.
	refRateLimited
	// refQuotaUsed: the channel's daily quota is used; until is when it
	// refills (the next UTC midnight), retryAfter the wait from now.
	refQuotaUsed
	// refQueueFull: the device's queue holds the most it may.
	refQueueFull
	// refSuppressed: taken, and dropped for the device's sake (its power,
	// its bindings, a TTL 0 message to a device that is away).
	refSuppressed
	// refInactive: the device has not been seen for InactiveAfter.
	refInactive
	// refUnavailable: the service cannot take it now (the store failed or
	// is slow, every in-flight slot is taken, the store is not ready).
	refUnavailable
	// refSourceBusy: the sender's address already has
	// MaxBodyReadsPerSource bodies being read; this one was not read.
	refSourceBusy
)

var refusalNames = [...]string{
	refNoChannel:       "no_channel",
	refMalformed:       "malformed",
	refTooLarge:        "too_large",
	refUnauthenticated: "unauthenticated",
	refForbidden:       "forbidden",
	refRateLimited:     "rate_limited",
	refQuotaUsed:       "quota_used",
	refQueueFull:       "queue_full",
	refSuppressed:      "suppressed",
	refInactive:        "inactive",
	refUnavailable:     "unavailable",
	refSourceBusy:      "source_busy",
}

func (k refusalKind) String() string {
	if int(k) < len(refusalNames) && refusalNames[k] != "" {
		return refusalNames[k]
	}
	return "refusal(" + strconv.Itoa(int(k)) + ")"
}

// refusal is a submission the pipeline did not take, as an error: every
// step returns one, and every renderer finds it with errors.As.
type senderRefusal struct {
	kind   refusalKind
	reason string // for the sender's eyes and the log; never parsed
	// retryAfter is how long the sender should wait (rate limited, quota
	// used, queue full, unavailable); 0 when there is nothing to wait for.
	retryAfter time.Duration
	until      time.Time // refQuotaUsed: when the quota refills
	// device is X-DeviceConnectionStatus when the device was known by the
	// time of the refusal; "" when it was not looked at.
	device string
	// messageID: a suppressed Web Push message was given an id, as if it
	// had been queued.
	messageID string
	// unread: refused without reading the body; the connection is closed
	// after the answer, since net/http would otherwise first read the
	// rest of a body that may never come.
	unread bool
}

func (r *senderRefusal) Error() string { return r.kind.String() + ": " + r.reason }

func refuse(k refusalKind, reason string) *senderRefusal {
	return &senderRefusal{kind: k, reason: reason}
}

// asRefusal is the refusal err is or wraps. Anything else is a failure
// of the service's own, answered as unavailable.
func asRefusal(err error, retry time.Duration) *senderRefusal {
	var r *senderRefusal
	if errors.As(err, &r) {
		return r
	}
	return &senderRefusal{kind: refUnavailable, reason: errStoreUnavailable, retryAfter: retry}
}

// unavailable refuses with the service's Retry-After.
func (s *Server) unavailable(reason string) *senderRefusal {
	return &senderRefusal{kind: refUnavailable, reason: reason, retryAfter: s.guard.lim.RetryAfter}
}

// errStoreUnavailable is what a sender is told when a store call failed;
// the error itself goes to the log.
const errStoreUnavailable = "store unavailable"

// retryAfterHeader is a Retry-After value in whole seconds, at least 1.
func retryAfterHeader(d time.Duration) string {
	return strconv.Itoa(max(int(d/time.Second), 1))
}

// quotaRefusal is the daily quota's refusal at now: it refills at the
// next UTC midnight, which a sender retrying every second would only
// hammer toward.
func quotaRefusal(quota int, now time.Time) *senderRefusal {
	midnight := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	return &senderRefusal{kind: refQuotaUsed, until: midnight,
		retryAfter: time.Duration(int(midnight.Sub(now).Seconds())+1) * time.Second,
		reason:     "daily quota of " + strconv.Itoa(quota) + " notifications for this channel used up"}
}

// mpnsOutcome is an MPNS refusal: the status code and X-* tokens a
// single POST to a channel URI is answered with (docs/senders.md), and
// what multicast reports per channel.
func mpnsOutcome(r *senderRefusal) outcome {
	o := outcome{Message: r.reason, Device: r.device, unread: r.unread}
	switch r.kind {
	case refNoChannel:
		o.Code, o.Notification, o.Subscription, o.Device = http.StatusNotFound, mpns.StatusDropped, mpns.SubscriptionExpired, mpns.DeviceDisconnected
	case refMalformed, refTooLarge:
		o.Code, o.Device = http.StatusBadRequest, ""
	case refUnauthenticated:
		o.Code, o.Device = http.StatusUnauthorized, ""
	case refForbidden:
		o.Code, o.Device = http.StatusForbidden, ""
	case refRateLimited, refQuotaUsed:
		o.Code, o.Notification, o.Subscription = http.StatusNotAcceptable, mpns.StatusDropped, mpns.SubscriptionActive
	case refQueueFull:
		o.Code, o.Notification, o.Subscription = http.StatusOK, mpns.StatusQueueFull, mpns.SubscriptionActive
	case refSuppressed:
		o.Code, o.Notification, o.Subscription = http.StatusOK, mpns.StatusSuppressed, mpns.SubscriptionActive
	case refInactive:
		o.Code, o.Notification, o.Device = http.StatusPreconditionFailed, mpns.StatusDropped, mpns.DeviceInactive
	default: // refUnavailable, refSourceBusy, and anything unknown
		o.Code, o.Device = http.StatusServiceUnavailable, ""
	}
	return o
}

// writeMPNS answers an MPNS POST refused with r.
func writeMPNS(w http.ResponseWriter, r *senderRefusal, messageID string) outcome {
	o := mpnsOutcome(r)
	if o.Code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterHeader(r.retryAfter))
	}
	o.write(w, messageID)
	return o
}
