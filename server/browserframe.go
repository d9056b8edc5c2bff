package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The frames of the websocket push protocol Firefox speaks to its push
// service (PushServiceWebSocket; autopush's "websocket protocol"), as far
// as a Web Push service needs them. docs/browsers.md is the contract.

// Browser message types.
const (
	browserHello       = "hello"
	browserRegister    = "register"
	browserUnregister  = "unregister"
	browserAck         = "ack"
	browserNack        = "nack"
	browserPing        = "ping"
	browserNotify      = "notification"
	browserBroadcastOn = "broadcast_subscribe"
	browserBroadcast   = "broadcast"
)

// Bounds of what a browser may send.
const (
	// maxBrowserFrame bounds one frame from a browser. Firefox's largest is
	// a register with a 65-byte key (well under 512 bytes) or an ack of a
	// few updates.
	maxBrowserFrame = 8 << 10
	// maxAckUpdates bounds the updates of one ack or the broadcasts of one
	// subscription. Firefox acks each message as it is handled, one
	// update per ack.
	maxAckUpdates = 64
	// maxUAIDLength is the longest uaid Firefox keeps.
	maxUAIDLength = 128
	// maxVersionLength bounds a version acknowledged: Herald's are decimal
	// sequence numbers.
	maxVersionLength = 20
)

// errBrowserFrame is wrapped by every error of parseBrowserFrame.
var errBrowserFrame = errors.New("bad browser frame")

// browserFrame is one frame from a browser; which fields matter depends on
// MessageType ("" is the keepalive {}).
type browserFrame struct {
	MessageType string `json:"messageType"`
	// hello
	UAID       string          `json:"uaid"`
	UseWebPush bool            `json:"use_webpush"`
	Broadcasts json.RawMessage `json:"broadcasts"`
	// register, unregister; nack may name it
	ChannelID string `json:"channelID"`
	Key       string `json:"key"`
	// ack
	Updates []browserUpdate `json:"updates"`
	// nack
	Version string `json:"version"`
	Code    int    `json:"code"`
}

// browserUpdate is one acknowledged message: 100 delivered, 101 not
// decrypted, 102 not delivered (no such subscription, or a repeat).
type browserUpdate struct {
	ChannelID string `json:"channelID"`
	Version   string `json:"version"`
	Code      int    `json:"code"`
}

// parseBrowserFrame decodes and checks one frame from a browser. Unknown
// fields are ignored, as Firefox's own client does with the service's;
// an unknown messageType is an error, so that nothing a browser sends is
// silently taken for something else.
func parseBrowserFrame(data []byte) (*browserFrame, error) {
	if len(data) > maxBrowserFrame {
		return nil, fmt.Errorf("%w: %d bytes; the limit is %d", errBrowserFrame, len(data), maxBrowserFrame)
	}
	var f browserFrame
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", errBrowserFrame, err)
	}
	if d.More() {
		return nil, fmt.Errorf("%w: more than one JSON value", errBrowserFrame)
	}
	bad := func(format string, a ...any) (*browserFrame, error) {
		return nil, fmt.Errorf("%w: %s: %s", errBrowserFrame, clipType(f.MessageType), fmt.Sprintf(format, a...))
	}
	switch f.MessageType {
	case "", browserPing:
	case browserHello:
		if len(f.UAID) > maxUAIDLength {
			return bad("uaid longer than %d characters", maxUAIDLength)
		}
		if !f.UseWebPush {
			return bad("use_webpush must be true: this service speaks Web Push only")
		}
	case browserRegister, browserUnregister:
		if !validChannelUUID(f.ChannelID) {
			return bad("channelID must be a UUID")
		}
		if len(f.Key) > 128 {
			return bad("key longer than 128 characters")
		}
	case browserAck:
		if len(f.Updates) == 0 || len(f.Updates) > maxAckUpdates {
			return bad("%d updates; 1 to %d are allowed", len(f.Updates), maxAckUpdates)
		}
		for _, u := range f.Updates {
			if len(u.Version) == 0 || len(u.Version) > maxVersionLength {
				return bad("version must be 1 to %d characters", maxVersionLength)
			}
		}
	case browserNack:
		if len(f.Version) == 0 || len(f.Version) > maxVersionLength {
			return bad("version must be 1 to %d characters", maxVersionLength)
		}
	case browserBroadcastOn:
		if len(f.Broadcasts) > 1024 {
			return bad("broadcasts larger than 1024 bytes")
		}
	default:
		return bad("unknown messageType")
	}
	return &f, nil
}

// validChannelUUID says whether s is a UUID in its 36-character form, as
// Firefox spells the channelIDs it chooses.
func validChannelUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// clipType keeps an unknown messageType short and printable for an error.
func clipType(t string) string {
	if len(t) > 32 {
		t = t[:32]
	}
	return fmt.Sprintf("%q", t)
}
