package mpns

import (
	"fmt"
	"strings"
)

// Kind is the type of a notification.
type Kind string

// Spec is everything that differs between notification kinds. Every layer
// (the service's endpoint and metrics, the wire protocol, the daemon, the
// UI and the command-line senders) reads a kind's behaviour from here, so a
// kind is added in one place.
type Spec struct {
	Kind Kind
	// Targets are the X-WindowsPhone-Target values that select the kind,
	// compared without regard to case. The first is the one a sender puts
	// on; "" means the header is absent. The others are what sender
	// libraries sent that MPNS never documented: python-mpns put "raw" on
	// raw notifications, old PushSharp "tile" on tile ones.
	Targets []string
	// ClassBase is the immediate X-NotificationClass; 10 and 20 are added
	// for the 450 s and 900 s batching intervals.
	ClassBase int
	// Root is the element under <wp:Notification> the body must hold, or
	// "" for a body passed through unparsed.
	Root string
	// NeedsBind: the shell takes the kind only on a channel bound to it
	// (BindToShellToast, BindToShellTile); otherwise it is Suppressed.
	NeedsBind bool
	// LowPowerSuppressed: the shell drops the kind while the device's
	// power is low (every kind is dropped at critical).
	LowPowerSuppressed bool

	parse  func(doc *document, n *Notification) error
	sample func() Message
}

// Sample returns a small valid notification of the kind, for tests and
// examples.
func (s Spec) Sample() Message { return s.sample() }

// Target is the X-WindowsPhone-Target value a sender puts on the kind
// ("" for none).
func (s Spec) Target() string {
	if len(s.Targets) == 0 {
		return ""
	}
	return s.Targets[0]
}

// MPNS says whether an MPNS request can select the kind: Web Push
// messages arrive by another protocol and have no target or class.
func (s Spec) MPNS() bool { return len(s.Targets) > 0 }

// specs lists the kinds; each kind's Spec, payload type and Message
// methods live in its own file.
var specs = []Spec{toastSpec, tileSpec, rawSpec, webPushSpec}

// Kinds returns every notification kind's Spec.
func Kinds() []Spec { return append([]Spec(nil), specs...) }

// Spec returns the kind's Spec; ok is false for a kind MPNS does not define.
func (k Kind) Spec() (s Spec, ok bool) {
	for _, s := range specs {
		if s.Kind == k {
			return s, true
		}
	}
	return Spec{}, false
}

// Valid says whether k is a notification kind.
func (k Kind) Valid() bool {
	_, ok := k.Spec()
	return ok
}

// Target returns the X-WindowsPhone-Target value a sender puts on a
// notification of kind k ("" for raw, which carries none).
func (k Kind) Target() string {
	if s, ok := k.Spec(); ok {
		return s.Target()
	}
	return ""
}

// KindForTarget returns the kind an X-WindowsPhone-Target value selects,
// ignoring case and surrounding spaces; ok is false for a target no kind
// takes.
func KindForTarget(target string) (k Kind, ok bool) {
	t := strings.TrimSpace(target)
	for _, s := range specs {
		for _, v := range s.Targets {
			if strings.EqualFold(t, v) {
				return s.Kind, true
			}
		}
	}
	return "", false
}

// KindNames lists the kinds an MPNS sender sends, for messages: "toast,
// tile or raw".
func KindNames() string {
	var names []string
	for _, s := range specs {
		if s.MPNS() {
			names = append(names, string(s.Kind))
		}
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// targetNames lists the targets senders put on, for messages:
// `"toast", "token" (tile) or absent (raw)`.
func targetNames() string {
	var names []string
	for _, s := range specs {
		if !s.MPNS() {
			continue
		}
		switch t := s.Target(); t {
		case "":
			names = append(names, "absent ("+string(s.Kind)+")")
		case string(s.Kind):
			names = append(names, fmt.Sprintf("%q", t))
		default:
			names = append(names, fmt.Sprintf("%q (%s)", t, s.Kind))
		}
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
