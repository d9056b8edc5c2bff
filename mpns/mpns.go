// Package mpns is the vocabulary of the Microsoft Push Notification Service
// as Herald speaks it: header names, notification classes and targets,
// response status tokens, and the toast, tile and raw payloads with their
// parsing, validation and tile-field merging.
//
// Each kind's behaviour is data in one place, its Spec in the kind's own
// file (toast.go, tile.go, raw.go; kind.go lists them), so the
// notification service, the device daemon, the UI and the command-line
// senders all agree on what a valid notification is and what it does.
//
// Client is the one sender: it builds the request for a Message (*Toast,
// *Tile or Raw), posts it and reads the answer. Apart from Client the
// package performs no I/O and keeps no global state.
package mpns

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Header names as MPNS spells them. Lookups in this package ignore case,
// because MPNS senders build header maps by hand with every spelling.
const (
	HeaderNotificationClass      = "X-NotificationClass"
	HeaderTarget                 = "X-WindowsPhone-Target"
	HeaderMessageID              = "X-MessageID"
	HeaderNotificationStatus     = "X-NotificationStatus"
	HeaderSubscriptionStatus     = "X-SubscriptionStatus"
	HeaderDeviceConnectionStatus = "X-DeviceConnectionStatus"
)

// Status tokens exactly as MPNS put them on the wire. Note InActive and
// TempDisconnected: the documentation's prose spells them differently, and
// senders that matched the prose never recognised the real responses.
const (
	StatusReceived   = "Received"
	StatusDropped    = "Dropped"
	StatusQueueFull  = "QueueFull"
	StatusSuppressed = "Suppressed"

	SubscriptionActive  = "Active"
	SubscriptionExpired = "Expired"

	DeviceConnected        = "Connected"
	DeviceTempDisconnected = "TempDisconnected"
	DeviceInactive         = "InActive"
	DeviceDisconnected     = "Disconnected"
)

// MaxBodySize is MPNS's 3 KB payload limit, in bytes.
const MaxBodySize = 3072

// MaxImageURLLength is the longest image URI, in characters, a tile may
// carry; MPNS answered longer ones with MessageBadContent on the device.
const MaxImageURLLength = 256

// MaxParamLength is the longest toast Param (deep link), in characters.
const MaxParamLength = 256

// MaxMessageIDLength is the longest X-MessageID accepted, in bytes.
const MaxMessageIDLength = 64

// Delay is the batching interval a class asks for, in seconds.
type Delay int

// The three batching intervals MPNS offers.
const (
	Immediate  Delay = 0
	Within450s Delay = 450
	Within900s Delay = 900
)

// Duration returns the batching interval as a time.Duration.
func (d Delay) Duration() time.Duration { return time.Duration(d) * time.Second }

// ParseClass maps an X-NotificationClass value ("1", "2", "3", "11", "12",
// "13", "21", "22", "23") to its kind and delay: tile = 1/11/21,
// toast = 2/12/22, raw = 3/13/23. Surrounding spaces are allowed; anything
// else is ErrBadClass.
func ParseClass(v string) (Kind, Delay, error) {
	s := strings.TrimSpace(v)
	if len(s) == 1 || (len(s) == 2 && (s[0] == '1' || s[0] == '2')) {
		var delay Delay
		if len(s) == 2 {
			delay = Within450s
			if s[0] == '2' {
				delay = Within900s
			}
		}
		base := int(s[len(s)-1] - '0')
		for _, k := range specs {
			if k.MPNS() && k.ClassBase == base {
				return k.Kind, delay, nil
			}
		}
	}
	return "", 0, newError(ErrBadClass, "%s %q is not a notification class (1-3, 11-13 or 21-23)", HeaderNotificationClass, v)
}

// ClassFor is the inverse of ParseClass: the X-NotificationClass value for a
// kind and delay (KindToast, Immediate → 2). It returns 0 when the kind or
// the delay is not one MPNS defines.
func ClassFor(k Kind, d Delay) int {
	spec, ok := k.Spec()
	if !ok || !spec.MPNS() {
		return 0
	}
	base := spec.ClassBase
	switch d {
	case Immediate:
		return base
	case Within450s:
		return base + 10
	case Within900s:
		return base + 20
	}
	return 0
}

// Sentinel errors. Every error returned by ParseRequest, ParseToast and
// ParseTile satisfies errors.Is(err, ErrBadRequest) as well as the specific
// sentinel, so a service can map any of them to HTTP 400 and a device to
// PayloadFormatError, while tests and logs can still tell them apart.
var (
	ErrBadRequest       = errors.New("mpns: bad request")
	ErrTooLarge         = errors.New("mpns: body too large")
	ErrBadClass         = errors.New("mpns: bad notification class")
	ErrBadTarget        = errors.New("mpns: bad target")
	ErrTargetMismatch   = errors.New("mpns: target does not match notification class")
	ErrBadMessageID     = errors.New("mpns: bad message id")
	ErrEmptyBody        = errors.New("mpns: empty body")
	ErrMalformed        = errors.New("mpns: malformed payload")
	ErrUnknownTemplate  = errors.New("mpns: unknown tile template")
	ErrUnknownField     = errors.New("mpns: unknown field")
	ErrTemplateMismatch = errors.New("mpns: tile template mismatch")
)

// requestError carries a specific message and unwraps to both its sentinel
// and, for request and payload problems, ErrBadRequest.
type requestError struct {
	kind       error
	badRequest bool
	msg        string
}

func (e *requestError) Error() string { return "mpns: " + e.msg }

func (e *requestError) Unwrap() []error {
	if e.badRequest {
		return []error{e.kind, ErrBadRequest}
	}
	return []error{e.kind}
}

// newError returns a bad-request error of the given kind.
func newError(kind error, format string, args ...any) error {
	return &requestError{kind: kind, badRequest: true, msg: fmt.Sprintf(format, args...)}
}
