// Package wire defines the frames the device daemon and the notification
// service exchange over their one websocket. Every frame is a JSON text
// message with a "type" field; unknown fields are ignored so that either side
// can add optional fields without a new version, and Version changes only
// when a frame's meaning changes.
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/heraldpush/herald/mpns"
)

// Version is the protocol version both ends speak: the service announces
// it in challenge and the device in hello. Version 2 replaced version 1's
// secret sent in hello with a proof of it (see auth.go).
const Version = 2

// MaxFrameSize bounds one frame on either side. A notify batch carries at
// most a few notifications of at most 3 KB each, base64 encoded.
const MaxFrameSize = 64 << 10

// Frame types.
const (
	TypeChallenge  = "challenge"  // service → device: the first frame, with a nonce to prove the secret on
	TypeHello      = "hello"      // device → service: identify or enrol
	TypeWelcome    = "welcome"    // service → device: identity and heartbeat bounds
	TypeRefused    = "refused"    // service → device: the identity is refused for good, proven
	TypeRegister   = "register"   // device → service: open a channel for an app
	TypeRegistered = "registered" // service → device: the channel and its URI
	TypeUnregister = "unregister" // device → service: close a channel
	TypeBind       = "bind"       // device → service: shell bindings of a channel
	TypeState      = "state"      // device → service: power level
	TypeAck        = "ack"        // device → service: cumulative sequence number applied
	TypeNotify     = "notify"     // service → device: a batch of notifications
	TypeURI        = "uri"        // service → device: a channel's URI changed
	TypeExpired    = "expired"    // service → device: a channel no longer exists
	TypeResult     = "result"     // service → device: the outcome of unregister, bind or state
)

// Error codes carried in Result.Code and Registered.Code. They mirror the
// exceptions HttpNotificationChannel raised, so the daemon can pass them on.
const (
	CodeOK            = ""
	CodeQuotaExceeded = "QuotaExceeded"
	CodeNotFound      = "NotFound"
	CodeBadRequest    = "BadRequest"
	CodeUnauthorized  = "Unauthorized"
	CodeServerError   = "ServerUnavailable"
)

// Websocket close codes the service uses (4000–4999 is the private range).
const (
	// CloseRetryLater asks the device to reconnect no sooner than the delay
	// in the close reason (seconds, decimal): the service is shedding load or
	// shutting down.
	CloseRetryLater = 4001
	// CloseUnauthorized: the device is unknown, retired or its proof is
	// wrong. On its own it proves nothing (anyone in the path can send it):
	// the device forgets its identity only when the refusal is proven
	// (a refused frame it can verify, or a verified TLS connection).
	CloseUnauthorized = 4003
	// CloseProtocol: the device sent a frame the service cannot accept,
	// or speaks a protocol version the service does not.
	CloseProtocol = 4002
	// CloseReplaced: another connection for the same device took over.
	CloseReplaced = 4004
)

// Envelope is what every frame starts with.
type Envelope struct {
	Type string `json:"type"`
}

// Challenge is the service's first frame. Nonce is fresh for every
// connection, so a proof made for one connection is worth nothing on
// another.
type Challenge struct {
	Type    string `json:"type"`
	Version int    `json:"version"`
	Nonce   string `json:"nonce"`
}

// Hello opens a session. A device without an identity leaves ID, Nonce and
// Proof empty and is enrolled. An enrolled device proves its secret without
// sending it: Proof is HelloProof over the challenge's nonce and its own
// Nonce, which the service's answer must be bound to in turn. LastSeq is
// the highest sequence number it has applied, so the service resends only
// what came after.
type Hello struct {
	Type    string `json:"type"`
	Version int    `json:"version"`
	ID      string `json:"id,omitempty"`
	Nonce   string `json:"nonce,omitempty"`
	Proof   string `json:"proof,omitempty"`
	LastSeq uint64 `json:"last_seq"`
	Power   string `json:"power,omitempty"`
	// Urgency is the least urgent Web Push message the device takes now
	// (very-low, low, normal, high; "" takes everything): see State.
	Urgency string `json:"urgency,omitempty"`
	// Secret is never sent: it is read only so that a hello carrying one
	// (version 1's way, which puts the secret on the wire) is refused
	// rather than accepted with the secret silently ignored.
	Secret string `json:"secret,omitempty"`
	// Heartbeat is the interval, in seconds, after which the device pings
	// a silent link (0: not said). The service bounds how long what it
	// wrote may stay unacknowledged by it: past one heartbeat the device
	// itself has found a dead link and let go of the connection.
	Heartbeat int `json:"heartbeat,omitempty"`
}

// MaxHeartbeat bounds Hello.Heartbeat: a day, far past any NAT's patience.
const MaxHeartbeat = 24 * 60 * 60

// Welcome answers Hello. Secret is only set on enrolment; Proof only for an
// enrolled device (WelcomeProof), so the device knows the service that
// welcomes it knows its key.
type Welcome struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Secret string `json:"secret,omitempty"`
	Proof  string `json:"proof,omitempty"`
	// MinHeartbeat is the shortest interval between device pings the
	// service accepts, in seconds; MaxIdle is how long the service keeps a
	// silent connection before it gives up on it, in seconds.
	MinHeartbeat int `json:"min_heartbeat"`
	MaxIdle      int `json:"max_idle"`
}

// Refused tells an enrolled device that the service will never accept its
// identity again (it was retired), proven with RefusedProof over both
// nonces: the device forgets its identity on this, not on the close code
// that follows it. Reason is one of the Refused* reasons.
type Refused struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
	Proof  string `json:"proof"`
}

// Reasons a device is refused, in Refused.Reason and in the text of the
// 4003 close.
const (
	RefusedUnknown  = "unknown device"
	RefusedBadProof = "wrong proof"
	RefusedRetired  = "retired"
)

// Register asks for the channel (App, Channel). Opening an existing channel
// returns it unchanged unless Renew is set, which rotates its URI.
type Register struct {
	Type        string `json:"type"`
	ReqID       uint64 `json:"req"`
	App         string `json:"app"`
	Channel     string `json:"channel"`
	ServiceName string `json:"service_name,omitempty"`
	Renew       bool   `json:"renew,omitempty"`
	// VAPIDKey restricts the channel to Web Push messages signed with
	// this application server key (RFC 8292 §4): base64url of the
	// uncompressed P-256 point.
	VAPIDKey string `json:"vapid_key,omitempty"`
}

// MaxVAPIDKeyLength bounds Register.VAPIDKey: a 65-byte key is 87
// base64url characters, 88 padded.
const MaxVAPIDKeyLength = 88

// Registered answers Register.
type Registered struct {
	Type      string `json:"type"`
	ReqID     uint64 `json:"req"`
	ChannelID string `json:"channel_id,omitempty"`
	URI       string `json:"uri,omitempty"`
	Code      string `json:"code,omitempty"`
	Message   string `json:"message,omitempty"`
}

// Unregister closes a channel; its URI answers 404 Expired from then on.
type Unregister struct {
	Type      string `json:"type"`
	ReqID     uint64 `json:"req"`
	ChannelID string `json:"channel_id"`
}

// Bind sets a channel's shell bindings. It replaces the previous bindings
// whole, so the device is the source of truth and a resend is harmless.
type Bind struct {
	Type      string   `json:"type"`
	ReqID     uint64   `json:"req"`
	ChannelID string   `json:"channel_id"`
	Toast     bool     `json:"toast"`
	Tile      bool     `json:"tile"`
	Domains   []string `json:"domains,omitempty"`
	Pinned    []string `json:"pinned,omitempty"`
}

// State reports the device's power level ("normal", "low", "critical")
// and the minimum urgency (mpns.Urgency's names) it derives from its power
// and network: the service holds back queued messages below it until it
// drops. "" takes everything, as a device that predates urgency does.
type State struct {
	Type    string `json:"type"`
	ReqID   uint64 `json:"req"`
	Power   string `json:"power"`
	Urgency string `json:"urgency,omitempty"`
}

// Result answers Unregister, Bind and State.
type Result struct {
	Type    string `json:"type"`
	ReqID   uint64 `json:"req"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Ack says the device has applied every notification up to Seq.
type Ack struct {
	Type string `json:"type"`
	Seq  uint64 `json:"seq"`
}

// Notification is one routed notification. Body is the MPNS payload as the
// cloud service sent it (JSON encodes it as base64).
type Notification struct {
	Seq       uint64 `json:"seq"`
	ChannelID string `json:"channel_id"`
	Kind      string `json:"kind"` // an mpns.Kind
	Class     int    `json:"class"`
	MessageID string `json:"message_id,omitempty"`
	Body      []byte `json:"body"`
	// AcceptedAt is when the service accepted the sender's POST, in unix
	// milliseconds (0: not said), so the phone can show when a
	// notification was sent as well as when it arrived.
	AcceptedAt int64 `json:"accepted_at,omitempty"`
}

// Notify carries notifications in ascending sequence order.
type Notify struct {
	Type          string         `json:"type"`
	Notifications []Notification `json:"notifications"`
}

// URI announces a channel's new URI (ChannelUriUpdated).
type URI struct {
	Type      string `json:"type"`
	ChannelID string `json:"channel_id"`
	URI       string `json:"uri"`
}

// Expired announces that a channel no longer exists on the service.
type Expired struct {
	Type      string `json:"type"`
	ChannelID string `json:"channel_id"`
}

// ErrBadFrame is returned for a frame that is not valid JSON, has an unknown
// type, or lacks a required field.
var ErrBadFrame = errors.New("wire: bad frame")

// ErrVersion is returned (with ErrBadFrame) for a hello or challenge of
// another protocol version: the peer is told which version is spoken.
var ErrVersion = errors.New("unsupported protocol version")

// Encode marshals a frame. The frame's Type field must already be set;
// use the New* helpers or set it by hand.
func Encode(v any) ([]byte, error) {
	switch f := v.(type) {
	case Challenge:
		if b, ok := encodeChallenge(f); ok {
			return b, nil
		}
	case Welcome:
		if b, ok := encodeWelcome(f); ok {
			return b, nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("wire: encode: %w", err)
	}
	return b, nil
}

// DecodeDevice decodes a frame sent by a device (for the service).
func DecodeDevice(b []byte) (any, error) {
	if a, ok := decodeAck(b); ok {
		return a, nil
	}
	if h, ok := decodeHello(b); ok {
		if err := validateDevice(h); err != nil {
			return nil, err
		}
		return h, nil
	}
	t, err := peekType(b)
	if err != nil {
		return nil, err
	}
	var v any
	switch t {
	case TypeHello:
		v = &Hello{}
	case TypeRegister:
		v = &Register{}
	case TypeUnregister:
		v = &Unregister{}
	case TypeBind:
		v = &Bind{}
	case TypeState:
		v = &State{}
	case TypeAck:
		v = &Ack{}
	default:
		return nil, fmt.Errorf("%w: unknown device frame type %q", ErrBadFrame, t)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadFrame, t, err)
	}
	if err := validateDevice(v); err != nil {
		return nil, err
	}
	return v, nil
}

// ackPrefix is how an ack frame starts as this package encodes it.
const ackPrefix = `{"type":"ack","seq":`

// decodeAck decodes an ack frame exactly as Encode writes it (a device
// sends one for every notify frame, so it is the frame the service reads
// most) without the two passes of reflection the general decoder takes.
// Anything else, an ack spaced or ordered otherwise included, is not
// decoded here (ok false) and goes the general way, which accepts every
// frame this accepts, with the same result (FuzzDecodeAck).
func decodeAck(b []byte) (a *Ack, ok bool) {
	if len(b) < len(ackPrefix)+2 || string(b[:len(ackPrefix)]) != ackPrefix || b[len(b)-1] != '}' {
		return nil, false
	}
	digits := b[len(ackPrefix) : len(b)-1]
	if len(digits) > 20 || len(digits) > 1 && digits[0] == '0' {
		return nil, false
	}
	var n uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return nil, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return nil, false // out of range: the general decoder says so
		}
		n = n*10 + d
	}
	return &Ack{Type: TypeAck, Seq: n}, true
}

// DecodeService decodes a frame sent by the service (for the device).
func DecodeService(b []byte) (any, error) {
	t, err := peekType(b)
	if err != nil {
		return nil, err
	}
	var v any
	switch t {
	case TypeChallenge:
		v = &Challenge{}
	case TypeWelcome:
		v = &Welcome{}
	case TypeRefused:
		v = &Refused{}
	case TypeRegistered:
		v = &Registered{}
	case TypeNotify:
		v = &Notify{}
	case TypeURI:
		v = &URI{}
	case TypeExpired:
		v = &Expired{}
	case TypeResult:
		v = &Result{}
	default:
		return nil, fmt.Errorf("%w: unknown service frame type %q", ErrBadFrame, t)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadFrame, t, err)
	}
	if err := validateService(v); err != nil {
		return nil, err
	}
	return v, nil
}

func peekType(b []byte) (string, error) {
	if len(b) > MaxFrameSize {
		return "", fmt.Errorf("%w: %d bytes exceeds %d", ErrBadFrame, len(b), MaxFrameSize)
	}
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadFrame, err)
	}
	if e.Type == "" {
		return "", fmt.Errorf("%w: missing type", ErrBadFrame)
	}
	return e.Type, nil
}

// Limits on identifiers, shared by both ends so that each can refuse what
// the other would refuse anyway.
const (
	MaxNameLength = 64  // app ids, channel names, service names
	MaxIDLength   = 128 // device ids, secrets, channel ids
	MaxDomains    = 16
	MaxPinned     = 32
	MaxDomainLen  = 256
)

func validName(s string) bool {
	if s == "" || len(s) > MaxNameLength {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '/' || r == '\\' {
			return false
		}
	}
	return true
}

// ValidName reports whether s is acceptable as an app id, channel name or
// service name: 1–64 printable characters without spaces or slashes.
func ValidName(s string) bool { return validName(s) }

func validateDevice(v any) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadFrame, fmt.Sprintf(format, a...))
	}
	switch f := v.(type) {
	case *Hello:
		if f.Version != Version {
			return fmt.Errorf("%w: %w %d; this end speaks %d", ErrBadFrame, ErrVersion, f.Version, Version)
		}
		if len(f.ID) > MaxIDLength {
			return bad("hello: id too long")
		}
		if f.Secret != "" {
			return bad("hello: a secret never travels in a version %d hello; prove it with nonce and proof", Version)
		}
		if f.ID == "" {
			if f.Nonce != "" || f.Proof != "" {
				return bad("hello: nonce and proof go with an id")
			}
		} else if !validNonce(f.Nonce) || !validNonce(f.Proof) {
			return bad("hello: an id needs a nonce and a proof of %d base64url characters", NonceChars)
		}
		if f.Power != "" && !validPower(f.Power) {
			return bad("hello: power must be normal, low or critical")
		}
		if !validUrgency(f.Urgency) {
			return bad("hello: urgency must be very-low, low, normal or high")
		}
		if f.Heartbeat < 0 || f.Heartbeat > MaxHeartbeat {
			return bad("hello: heartbeat must be 0-%d seconds", MaxHeartbeat)
		}
	case *Register:
		if !validName(f.App) || !validName(f.Channel) {
			return bad("register: app and channel must be 1-%d printable characters without spaces or slashes", MaxNameLength)
		}
		if f.ServiceName != "" && !validName(f.ServiceName) {
			return bad("register: bad service name")
		}
		if len(f.VAPIDKey) > MaxVAPIDKeyLength {
			return bad("register: vapid key longer than %d characters", MaxVAPIDKeyLength)
		}
	case *Unregister:
		if f.ChannelID == "" || len(f.ChannelID) > MaxIDLength {
			return bad("unregister: bad channel id")
		}
	case *Bind:
		if f.ChannelID == "" || len(f.ChannelID) > MaxIDLength {
			return bad("bind: bad channel id")
		}
		if len(f.Domains) > MaxDomains || len(f.Pinned) > MaxPinned {
			return bad("bind: at most %d domains and %d pinned tiles", MaxDomains, MaxPinned)
		}
		for _, d := range f.Domains {
			if d == "" || len(d) > MaxDomainLen {
				return bad("bind: bad domain")
			}
		}
		for _, p := range f.Pinned {
			if p == "" || len(p) > MaxDomainLen {
				return bad("bind: bad pinned tile id")
			}
		}
	case *State:
		if !validPower(f.Power) {
			return bad("state: power must be normal, low or critical")
		}
		if !validUrgency(f.Urgency) {
			return bad("state: urgency must be very-low, low, normal or high")
		}
	}
	return nil
}

func validUrgency(u string) bool {
	_, ok := mpns.ParseUrgency(u)
	return u == "" || ok
}

// MinUrgency is the minimum urgency a hello or state frame reports; a
// frame without one takes everything.
func MinUrgency(u string) mpns.Urgency {
	if v, ok := mpns.ParseUrgency(u); ok {
		return v
	}
	return mpns.UrgencyVeryLow
}

func validPower(p string) bool {
	switch p {
	case "normal", "low", "critical":
		return true
	}
	return false
}

func validateService(v any) error {
	switch f := v.(type) {
	case *Challenge:
		if f.Version != Version {
			return fmt.Errorf("%w: %w %d; this end speaks %d", ErrBadFrame, ErrVersion, f.Version, Version)
		}
		if !validNonce(f.Nonce) {
			return fmt.Errorf("%w: challenge: nonce must be %d base64url characters", ErrBadFrame, NonceChars)
		}
	case *Welcome:
		if f.ID == "" || len(f.ID) > MaxIDLength || len(f.Secret) > MaxIDLength {
			return fmt.Errorf("%w: welcome without id, or id or secret too long", ErrBadFrame)
		}
		if f.Proof != "" && !validNonce(f.Proof) {
			return fmt.Errorf("%w: welcome: bad proof", ErrBadFrame)
		}
	case *Refused:
		if !validNonce(f.Proof) || len(f.Reason) > MaxNameLength {
			return fmt.Errorf("%w: refused: bad proof or reason", ErrBadFrame)
		}
	case *Notify:
		var last uint64
		for _, n := range f.Notifications {
			if n.Seq <= last {
				return fmt.Errorf("%w: notify: sequence numbers must ascend", ErrBadFrame)
			}
			last = n.Seq
			if !mpns.Kind(n.Kind).Valid() {
				return fmt.Errorf("%w: notify: unknown kind %q", ErrBadFrame, n.Kind)
			}
		}
	}
	return nil
}
