package mpns

import "fmt"

// Urgency is a Web Push message's urgency (RFC 8030 §5.3), and the
// minimum urgency a device accepts given its power and network. Higher
// means more urgent; the zero value is normal, the RFC's default, so a
// notification that says nothing is normal.
type Urgency int

// The four urgencies, lowest first.
const (
	UrgencyVeryLow Urgency = -2 // on power and Wi-Fi only: adverts
	UrgencyLow     Urgency = -1 // on power or Wi-Fi: topic updates
	UrgencyNormal  Urgency = 0  // on neither: chat
	UrgencyHigh    Urgency = 1  // even on low battery: calls
)

var urgencyNames = map[Urgency]string{
	UrgencyVeryLow: "very-low",
	UrgencyLow:     "low",
	UrgencyNormal:  "normal",
	UrgencyHigh:    "high",
}

// String is the urgency's name as the Urgency header and the wire spell it.
func (u Urgency) String() string {
	if s, ok := urgencyNames[u]; ok {
		return s
	}
	return fmt.Sprintf("urgency(%d)", int(u))
}

// Valid reports whether u is one of the four urgencies.
func (u Urgency) Valid() bool {
	_, ok := urgencyNames[u]
	return ok
}

// ParseUrgency reads an urgency's name: very-low, low, normal or high,
// exactly (RFC 8030 names them in lower case).
func ParseUrgency(s string) (Urgency, bool) {
	for u, name := range urgencyNames {
		if name == s {
			return u, true
		}
	}
	return 0, false
}

// MinUrgency is the least urgent message a device takes in its state: on
// low battery only high; on power and Wi-Fi everything; on power or Wi-Fi
// low and above; otherwise normal and above (RFC 8030 §5.3). Critical
// power is not an urgency question: MPNS's power levels suppress every
// notification there, and the device says so with its power level.
func MinUrgency(power string, charging, wifi bool) Urgency {
	switch {
	case power == "low" || power == "critical":
		return UrgencyHigh
	case charging && wifi:
		return UrgencyVeryLow
	case charging || wifi:
		return UrgencyLow
	}
	return UrgencyNormal
}
