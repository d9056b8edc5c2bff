package mpns

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Message is a notification a sender builds: a *Toast, a *Tile or Raw.
type Message interface {
	Kind() Kind
	// Payload is the request body.
	Payload() []byte
}

// SendOptions are what a sender may choose beside the message.
type SendOptions struct {
	// Delay is the batching interval (Immediate, Within450s, Within900s).
	Delay Delay
	// MessageID is X-MessageID; empty sends a new random UUID.
	MessageID string
}

// NewRequest builds the POST to a channel URI that MPNS sender libraries
// send for m: the class for its kind and delay, its target and a message
// id.
func NewRequest(ctx context.Context, uri string, m Message, o SendOptions) (*http.Request, error) {
	kind := m.Kind()
	class := ClassFor(kind, o.Delay)
	if class == 0 {
		return nil, newError(ErrBadClass, "no class for a %s notification with delay %d (want 0, 450 or 900)", kind, o.Delay)
	}
	if o.MessageID == "" {
		o.MessageID = NewMessageID()
	}
	if err := checkMessageID(o.MessageID); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, bytes.NewReader(m.Payload()))
	if err != nil {
		return nil, fmt.Errorf("mpns: channel URI: %w", err)
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("Accept", "application/*")
	req.Header.Set(HeaderNotificationClass, strconv.Itoa(class))
	req.Header.Set(HeaderMessageID, o.MessageID)
	if t := kind.Target(); t != "" {
		req.Header.Set(HeaderTarget, t)
	}
	return req, nil
}

// NewMessageID returns a random (version 4) UUID, what sender libraries put
// in X-MessageID.
func NewMessageID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails: crypto/rand panics rather than return short
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Result is what the service answered a notification.
type Result struct {
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Notification, Subscription and Device are X-NotificationStatus,
	// X-SubscriptionStatus and X-DeviceConnectionStatus (Status* and
	// Device* constants; "" when absent).
	Notification string `json:"notification"`
	Subscription string `json:"subscription"`
	Device       string `json:"device"`
	MessageID    string `json:"message_id"`
	// Error is the service's message when the notification was not
	// Received: a refusal's, or why a 200 was Suppressed.
	Error string `json:"error,omitempty"`
	// Header holds every response header.
	Header http.Header `json:"-"`
}

// Received says whether the service took the notification for delivery.
func (r Result) Received() bool {
	return r.Status == http.StatusOK && r.Notification == StatusReceived
}

// DefaultTimeout is the send timeout MPNS recommended to senders.
const DefaultTimeout = 15 * time.Second

// maxAnswer bounds how much of an answer's body a Client reads.
const maxAnswer = 4096

// Client sends notifications to channel URIs. The zero value uses an HTTP
// client with DefaultTimeout.
type Client struct {
	// HTTP sends the requests; set its Transport for TLS client
	// certificates (the authenticated, unthrottled endpoint).
	HTTP *http.Client
}

// Send posts m to uri. The error is for a request that could not be built
// or sent; whatever the service answered, including a refusal, is in the
// Result.
func (c *Client) Send(ctx context.Context, uri string, m Message, o SendOptions) (Result, error) {
	req, err := NewRequest(ctx, uri, m, o)
	if err != nil {
		return Result{}, err
	}
	return c.Do(req)
}

// Do sends a request NewRequest built and reads the answer.
func (c *Client) Do(req *http.Request) (Result, error) {
	res := Result{MessageID: req.Header.Get(HeaderMessageID)}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return res, fmt.Errorf("mpns: %w", err) // names the method and URI
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	res.Status, res.Header = resp.StatusCode, resp.Header
	res.Notification = resp.Header.Get(HeaderNotificationStatus)
	res.Subscription = resp.Header.Get(HeaderSubscriptionStatus)
	res.Device = resp.Header.Get(HeaderDeviceConnectionStatus)
	if !res.Received() {
		res.Error = strings.TrimSpace(string(msg))
	}
	return res, nil
}
