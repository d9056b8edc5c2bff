package bench

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/server"
)

// browserFrame is what a bench browser reads and writes of Firefox's push
// protocol (docs/browsers.md).
type browserFrame struct {
	MessageType  string           `json:"messageType,omitempty"`
	UAID         string           `json:"uaid,omitempty"`
	Status       int              `json:"status,omitempty"`
	UseWebPush   bool             `json:"use_webpush,omitempty"`
	ChannelID    string           `json:"channelID,omitempty"`
	PushEndpoint string           `json:"pushEndpoint,omitempty"`
	Version      string           `json:"version,omitempty"`
	Data         string           `json:"data,omitempty"`
	Updates      []map[string]any `json:"updates,omitempty"`
}

// startBrowser connects browser i to the service at base as Firefox does
// (hello, one subscription), then reads its notifications on a goroutine
// of its own, recording each and acking it. It returns the subscription's
// pushEndpoint.
func startBrowser(ctx context.Context, cfg Config, base string, i int, col *collector, wg *sync.WaitGroup) (string, *running, error) {
	src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%cfg.Sources))}
	dialer := websocket.Dialer{NetDialContext: (&net.Dialer{LocalAddr: src, Timeout: 20 * time.Second}).DialContext,
		ReadBufferSize: 512, WriteBufferSize: 512, Subprotocols: []string{"push-notification"}}
	url := "ws" + strings.TrimPrefix(base, "http") + server.BrowserPath
	conn, _, err := dialer.DialContext(ctx, url, nil)
	if err != nil {
		return "", nil, fmt.Errorf("bench: browser %d: %w", i, err)
	}
	fail := func(err error) (string, *running, error) {
		conn.Close()
		return "", nil, fmt.Errorf("bench: browser %d: %w", i, err)
	}
	conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	uuid := fmt.Sprintf("00000000-0000-4000-8000-%012x", i)
	for _, f := range []browserFrame{{MessageType: "hello", UseWebPush: true}, {MessageType: "register", ChannelID: uuid}} {
		if err := conn.WriteJSON(f); err != nil {
			return fail(err)
		}
		var r browserFrame
		if err := conn.ReadJSON(&r); err != nil {
			return fail(err)
		}
		if r.MessageType != f.MessageType || r.Status != http.StatusOK {
			return fail(fmt.Errorf("%s answered %+v", f.MessageType, r))
		}
		if r.PushEndpoint != "" {
			uuid = r.PushEndpoint // what the senders post to
		}
	}
	endpoint := uuid
	conn.SetReadDeadline(time.Time{})
	lctx, cancel := context.WithCancel(ctx)
	r := &running{cancel: cancel, done: make(chan struct{})}
	stop := context.AfterFunc(lctx, func() { conn.Close() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(r.done)
		defer stop()
		defer conn.Close()
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var m browserFrame
			if json.Unmarshal(data, &m) != nil || m.MessageType != "notification" {
				continue
			}
			now := time.Now()
			if body, err := base64.RawURLEncoding.DecodeString(m.Data); err == nil {
				col.record(body, now)
			}
			ack := browserFrame{MessageType: "ack", Updates: []map[string]any{{"channelID": m.ChannelID, "version": m.Version, "code": 100}}}
			conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := conn.WriteJSON(ack); err != nil {
				return
			}
		}
	}()
	return endpoint, r, nil
}

// postWebPush posts body as a Web Push message, as an application server
// does (the service never decrypts, so the body need not be ciphertext).
func postWebPush(ctx context.Context, c *http.Client, uri, body string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, uri, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("TTL", "3600")
	req.Header.Set("Content-Encoding", "aes128gcm")
	res, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 4096)) // so the connection is reused
	res.Body.Close()
	return res.StatusCode, nil
}
