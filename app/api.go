// Package app is what an app uses to talk to the local herald daemon: open
// its push channel, bind it to the shell's toast and tile, and receive raw
// notifications and foreground toasts. It is the HttpNotificationChannel of
// Herald. The request and event types here are the local API's contract;
// docs/protocol.md describes the same API for apps in any language.
package app

import (
	"encoding/json"
	"time"
)

// APIVersion prefixes every local API path.
const APIVersion = "/v1"

// Channel is an app's push channel as the daemon keeps it.
type Channel struct {
	App         string    `json:"app"`
	Name        string    `json:"channel"`
	ChannelID   string    `json:"channel_id"`
	URI         string    `json:"uri"`
	ServiceName string    `json:"service_name,omitempty"`
	Toast       bool      `json:"toast"`
	Tile        bool      `json:"tile"`
	Domains     []string  `json:"domains"`
	Pinned      []string  `json:"pinned"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// OwnerUID is the Unix user the app id belongs to (in lists; absent
	// for an app no user has claimed).
	OwnerUID *uint32 `json:"owner_uid,omitempty"`
}

// OpenRequest opens (or finds) an app's channel: POST /v1/apps/{app}/channel.
// Toast, Tile and Domains, when set, bind the channel in the same call.
type OpenRequest struct {
	Channel     string    `json:"channel,omitempty"` // default "default"
	ServiceName string    `json:"service_name,omitempty"`
	VAPIDKey    string    `json:"vapid_key,omitempty"`
	Renew       bool      `json:"renew,omitempty"`
	Toast       *bool     `json:"toast,omitempty"`
	Tile        *bool     `json:"tile,omitempty"`
	Domains     *[]string `json:"domains,omitempty"`
}

// BindRequest changes a channel's shell bindings:
// PATCH /v1/apps/{app}/channel/bindings. Fields left nil keep their value.
type BindRequest struct {
	Toast   *bool     `json:"toast,omitempty"`
	Tile    *bool     `json:"tile,omitempty"`
	Domains *[]string `json:"domains,omitempty"`
}

// PinRequest pins a secondary tile: POST /v1/apps/{app}/pins.
type PinRequest struct {
	TileID string `json:"tile_id"`
}

// StartScreen is GET /v1/ui: the start screen's address, with the key
// that opens it in its fragment. Only root and the daemon's own user get
// it.
type StartScreen struct {
	URL string `json:"url"`
}

// PowerRequest sets the device's power level: PUT /v1/power.
type PowerRequest struct {
	Level string `json:"level"` // normal, low, critical
}

// Tile is one live tile's state.
type Tile struct {
	App       string            `json:"app"`
	TileID    string            `json:"tile_id"`
	Template  string            `json:"template"`
	Fields    map[string]string `json:"fields"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// Toast is one received toast.
type Toast struct {
	// ID orders the device's toasts: a later toast has a larger one.
	ID         int64     `json:"id"`
	App        string    `json:"app"`
	Text1      string    `json:"text1"`
	Text2      string    `json:"text2"`
	Param      string    `json:"param"`
	Sound      string    `json:"sound,omitempty"`
	Silent     bool      `json:"silent,omitempty"`
	ShownBy    string    `json:"shown_by"` // "shell" or "app"
	MessageID  string    `json:"message_id,omitempty"`
	SentAt     time.Time `json:"sent_at,omitzero"` // when the service accepted the sender's POST; zero if not known
	ReceivedAt time.Time `json:"received_at"`
}

// Raw is a raw notification the phone received, as its raw log keeps it.
type Raw struct {
	ID        int64  `json:"id"`
	App       string `json:"app"`
	MessageID string `json:"message_id,omitempty"`
	Body      []byte `json:"body"`
	// Outcome is where it went: RawToApp, RawToHandler or RawDropped.
	Outcome    string    `json:"outcome"`
	Seq        uint64    `json:"seq"`
	SentAt     time.Time `json:"sent_at,omitzero"` // when the service accepted the sender's POST; zero if not known
	ReceivedAt time.Time `json:"received_at"`
}

// Where a raw notification went (Raw.Outcome).
const (
	RawToApp     = "app"     // the running app took it
	RawToHandler = "handler" // queued for the app's background handler
	RawDropped   = "dropped" // the app was not running: dropped, as MPNS did
)

// Status is the daemon's state: GET /v1/status.
type Status struct {
	Service   string     `json:"service"`
	DeviceID  string     `json:"device_id,omitempty"`
	Connected bool       `json:"connected"`
	Since     *time.Time `json:"since,omitempty"`
	// State is connecting, connected, waiting (between attempts) or
	// offline (StateOffline).
	State     string     `json:"state"`
	RetryAt   *time.Time `json:"retry_at,omitempty"`
	Heartbeat string     `json:"heartbeat"`
	// Network names the network the device is on; LearnedIdle describes
	// what the link learned about its NAT's idle timeout ("" while
	// nothing is known), e.g. "≥ 4m30s, < 5m0s".
	Network     string `json:"network,omitempty"`
	LearnedIdle string `json:"learned_idle,omitempty"`
	// HeartbeatSettled: the interval search on this network is over.
	HeartbeatSettled bool `json:"heartbeat_settled"`
	// HeartbeatCeiling is the longest interval the link may learn on this
	// network now; HeartbeatProbing: the interval in use is an upward
	// probe, not yet proven; NextProbe is when a settled link next tries
	// a longer interval (absent: not planned, as at the ceiling);
	// FailedProbes counts the heartbeats that went unanswered on this
	// network over the last 24 hours, each of which cost a reconnect.
	HeartbeatCeiling string     `json:"heartbeat_ceiling,omitempty"`
	HeartbeatProbing bool       `json:"heartbeat_probing,omitempty"`
	NextProbe        *time.Time `json:"next_probe,omitempty"`
	FailedProbes     int        `json:"failed_probes_last_day"`
	Reconnects       int        `json:"reconnects"`
	// Wakeups are the link's own outbound packets over the last hour.
	Wakeups    Wakeups          `json:"wakeups_last_hour"`
	LastError  string           `json:"last_error,omitempty"`
	Power      string           `json:"power"`
	AppliedSeq uint64           `json:"applied_seq"`
	Channels   int              `json:"channels"`
	Running    []string         `json:"running_apps"`
	Counters   map[string]int64 `json:"counters"`
	// Config is the daemon's effective configuration, keyed as in its
	// configuration file (what `herald config` prints).
	Config map[string]any `json:"config,omitempty"`
}

// StateOffline is the link's state while the start screen (or the
// emulator's UI API) holds the phone out of coverage: it makes no attempt
// to connect until switched back on, so it has no next attempt time.
const StateOffline = "offline"

// Wakeups counts outbound packets by cause.
type Wakeups struct {
	Heartbeats int `json:"heartbeats"`
	Reconnects int `json:"reconnects"`
	Acks       int `json:"acks"`
	Total      int `json:"total"`
}

// Event types on an app's event stream.
const (
	EventRaw = "raw" // a raw notification (HttpNotificationReceived)
	// EventWebPush is a Web Push message: Body is the RFC 8291
	// ciphertext exactly as the sender posted it, for the app to decrypt.
	EventWebPush = "webpush"
	EventToast   = "toast"      // a toast while in the foreground (ShellToastNotificationReceived)
	EventURI     = "uri"        // the channel's URI changed (ChannelUriUpdated)
	EventStatus  = "connection" // the device's link went up or down (ConnectionStatusChanged)
	EventError   = "error"      // something went wrong (ErrorOccurred)
)

// Error kinds, as ChannelErrorType named them.
const (
	ErrorChannelOpenFailed       = "ChannelOpenFailed"
	ErrorPayloadFormat           = "PayloadFormatError"
	ErrorMessageBadContent       = "MessageBadContent"
	ErrorNotificationRateTooHigh = "NotificationRateTooHigh"
	ErrorPowerLevelChanged       = "PowerLevelChanged"
	ErrorUnknown                 = "Unknown"
)

// Event is one frame of an app's event stream
// (GET /v1/apps/{app}/events: a websocket, or Server-Sent Events with
// Accept: text/event-stream). The app acknowledges events with
// {"ack": id}; unacknowledged events are sent again when it reconnects
// with ?after=<last id it processed> (or Last-Event-ID). Ids come from one
// sequence for the whole device: increasing within an app, with gaps.
type Event struct {
	ID        int64  `json:"id"`
	Type      string `json:"type"`
	App       string `json:"app"`
	MessageID string `json:"message_id,omitempty"`
	Body      []byte `json:"body,omitempty"` // raw payload (base64 in JSON)
	Text1     string `json:"text1,omitempty"`
	Text2     string `json:"text2,omitempty"`
	Param     string `json:"param,omitempty"`
	URI       string `json:"uri,omitempty"`
	Connected *bool  `json:"connected,omitempty"`
	ErrorKind string `json:"error_kind,omitempty"`
	Message   string `json:"message,omitempty"`
	Power     string `json:"power,omitempty"`
}

// EventAck is what the app sends on its event stream to acknowledge
// every event up to and including ID.
type EventAck struct {
	Ack int64 `json:"ack"`
}

// Error codes in the local API's error responses. They are the names of
// the exceptions HttpNotificationChannel threw, so ported code reads the
// same.
const (
	CodeChannelOpenFailed = "ChannelOpenFailed"
	CodeQuotaExceeded     = "PushNotificationChannelQuotaExceeded"
	CodeChannelExists     = "ChannelExists"
	CodeNotOpened         = "NotOpened"
	CodeServerUnavailable = "ServerUnavailable"
	CodeBadRequest        = "BadRequest"
	CodeNotFound          = "NotFound"
	CodeInternal          = "Internal"
	// CodeUnauthorizedAccess: the app id belongs to another Unix user, or
	// only root or the daemon's user may make the change.
	CodeUnauthorizedAccess = "UnauthorizedAccess"
)

// ErrorResponse is the body of every local API error.
type ErrorResponse struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// MarshalEvent encodes an event for the stream.
func MarshalEvent(e Event) ([]byte, error) { return json.Marshal(e) }
