package mpns

import (
	"net/http"
	"strings"
)

// Notification is one validated POST to a channel URI.
type Notification struct {
	Kind      Kind
	Delay     Delay
	MessageID string // X-MessageID as sent ("" if absent)
	Body      []byte // the body exactly as received (a copy; the caller may reuse its buffer)
	Toast     *Toast // set when Kind == KindToast
	Tile      *Tile  // set when Kind == KindTile
}

// ParseRequest validates the headers and body of one POST to a channel URI.
//
// Header names are matched without regard to case, even in a map built by
// hand with non-canonical keys. The rules, in the order they are checked:
//
//   - a body longer than MaxBodySize is ErrTooLarge;
//   - X-WindowsPhone-Target "toast" selects the toast classes, "token" the
//     tile classes, and an absent or empty target the raw classes (compared
//     without regard to case); "tile" (old PushSharp) is taken for "token"
//     and "raw" (python-mpns) for an absent target, since those libraries'
//     senders meant nothing else; any other target is ErrBadTarget;
//   - X-NotificationClass, when present, must be a class (ErrBadClass) of the
//     family the target selects (ErrTargetMismatch); when absent, the
//     immediate class of that family is assumed, as MPNS libraries sometimes
//     omit it;
//   - X-MessageID is optional; when present it must be printable ASCII of at
//     most MaxMessageIDLength bytes (ErrBadMessageID);
//   - an empty body is ErrEmptyBody for every kind;
//   - a toast or tile body must parse with ParseToast or ParseTile, and a
//     body holding the other kind of notification is ErrTargetMismatch.
//
// Content-Type is not checked: libraries send text/xml even for raw. Raw
// bodies are passed through unchanged.
func ParseRequest(h http.Header, body []byte) (*Notification, error) {
	if len(body) > MaxBodySize {
		return nil, newError(ErrTooLarge, "body is %d bytes; the limit is %d", len(body), MaxBodySize)
	}

	target, _, err := headerValue(h, HeaderTarget, ErrBadTarget)
	if err != nil {
		return nil, err
	}
	kind, ok := KindForTarget(target)
	if !ok {
		return nil, newError(ErrBadTarget, "%s %q is not %s", HeaderTarget, target, targetNames())
	}
	spec, _ := kind.Spec()

	delay := Immediate
	class, _, err := headerValue(h, HeaderNotificationClass, ErrBadClass)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(class) != "" {
		ck, cd, err := ParseClass(class)
		if err != nil {
			return nil, err
		}
		if ck != kind {
			return nil, newError(ErrTargetMismatch, "%s %s is a %s class but %s",
				HeaderNotificationClass, strings.TrimSpace(class), ck, describeTarget(kind, target))
		}
		delay = cd
	}

	msgID, _, err := headerValue(h, HeaderMessageID, ErrBadMessageID)
	if err != nil {
		return nil, err
	}
	if err := checkMessageID(msgID); err != nil {
		return nil, err
	}

	if len(body) == 0 {
		return nil, newError(ErrEmptyBody, "%s notification has an empty body", kind)
	}

	n := &Notification{Kind: kind, Delay: delay, MessageID: msgID, Body: append([]byte(nil), body...)}
	if spec.Root != "" {
		doc, err := parseDocument(body)
		if err != nil {
			return nil, err
		}
		if doc.kind != spec.Root {
			return nil, newError(ErrTargetMismatch, "body is a %s notification but %s", doc.kind, describeTarget(kind, target))
		}
		if err := spec.parse(doc, n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func describeTarget(k Kind, target string) string {
	if k.Target() == "" {
		return HeaderTarget + " is absent (" + string(k) + ")"
	}
	return HeaderTarget + " is " + `"` + strings.TrimSpace(target) + `" (` + string(k) + ")"
}

// headerValue returns the value of the named header, matching the name
// without regard to case across every key of h. Repeated values are accepted
// only when they agree: two different classes or targets on one request are
// ambiguous, and guessing would deliver something the sender did not mean.
func headerValue(h http.Header, name string, kind error) (value string, present bool, err error) {
	for k, vs := range h {
		if !strings.EqualFold(k, name) {
			continue
		}
		for _, v := range vs {
			if !present {
				value, present = v, true
				continue
			}
			if strings.TrimSpace(v) != strings.TrimSpace(value) {
				return "", true, newError(kind, "conflicting %s values %q and %q", name, value, v)
			}
		}
	}
	return value, present, nil
}

func checkMessageID(id string) error {
	if len(id) > MaxMessageIDLength {
		return newError(ErrBadMessageID, "%s is %d bytes; the limit is %d", HeaderMessageID, len(id), MaxMessageIDLength)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x20 || c > 0x7e {
			return newError(ErrBadMessageID, "%s %q contains a byte (0x%02x) that is not printable ASCII", HeaderMessageID, id, c)
		}
	}
	return nil
}
