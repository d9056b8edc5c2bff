package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/webpush"
	"github.com/heraldpush/herald/wire"
)

// BrowserPath is where browsers connect: a Firefox profile's
// dom.push.serverURL (docs/browsers.md).
const BrowserPath = "/browser"

// A browser is a device and each of its push subscriptions a channel. Its
// uaid, the one thing it sends to say who it is, is its secret: the store
// keeps the device under an id derived from the uaid and the uaid's
// SHA-256 as the device's key, never the uaid itself. A subscription's
// channel is named after the UUID the browser chose for it, under the app
// browserApp+UUID (a name no Herald device can register, since app names
// have no '/'), and its id is the device's id followed by the UUID, so a
// notification's channel id gives back the UUID without a store read.

// browserApp prefixes the app name of a browser's channels.
const browserApp = "browser/"

// isBrowserChannel says whether a channel is a browser's subscription:
// it takes only Web Push messages in the aes128gcm encoding, the one a
// browser can decrypt without headers the service does not keep.
func isBrowserChannel(ch store.Channel) bool { return strings.HasPrefix(ch.App, browserApp) }

// newUAID makes a browser's uaid: 256 random bits, base64url (43
// characters; Firefox keeps up to 128).
func newUAID() string { return newToken(32) }

// browserDeviceID is the device id of the browser whose uaid is uaid. The
// id is logged and kept in the clear; it gives no way back to the uaid.
func browserDeviceID(uaid string) string {
	h := sha256.Sum256([]byte("herald browser device id\x00" + uaid))
	return base64.RawURLEncoding.EncodeToString(h[:16])
}

// browserChannelID is the id of the channel of the browser device devID
// for its subscription uuid.
func browserChannelID(devID, uuid string) string { return devID + uuid }

var browserUpgrader = websocket.Upgrader{
	ReadBufferSize:  512,
	WriteBufferSize: 1024,
	WriteBufferPool: &sync.Pool{},
	// Firefox asks for this subprotocol (and does not insist on it).
	Subprotocols: []string{"push-notification"},
	// Firefox's push client is the browser itself, not a page: it may
	// send no Origin, and what a page could do here (make itself a uaid
	// and subscriptions) it could do with any websocket client.
	CheckOrigin: func(*http.Request) bool { return true },
}

// handleBrowser upgrades a browser's connection and runs its session.
func (s *Server) handleBrowser(w http.ResponseWriter, r *http.Request) {
	if s.shed(w) {
		return
	}
	// Hello-less connections are bounded as a device's are (prehello.go).
	helloDone, ok := s.admitHello(w, r)
	if !ok {
		return
	}
	conn, err := browserUpgrader.Upgrade(w, r, nil)
	if err != nil {
		helloDone()
		return // the upgrader has answered with an HTTP error
	}
	conn.SetReadLimit(maxBrowserFrame)
	source := sourceOf(r.RemoteAddr)
	if !s.holdConn(conn, helloDone) {
		return
	}
	go func() {
		defer s.wg.Done()
		sess := s.startBrowserSession(conn, source)
		helloDone() // answered or turned away: no longer waiting for a hello
		if sess == nil {
			conn.Close()
			return
		}
		sess.prepareReads()
		s.wg.Add(1)
		go sess.readLoop()
	}()
}

// browserHelloReply answers a browser's hello. The uaid is its secret:
// the reply is written to it and nowhere else.
type browserHelloReply struct {
	MessageType string          `json:"messageType"`
	UAID        string          `json:"uaid"`
	Status      int             `json:"status"`
	UseWebPush  bool            `json:"use_webpush"`
	Broadcasts  json.RawMessage `json:"broadcasts"`
}

// startBrowserSession reads a browser's hello, identifies or enrols it,
// and makes its session live. It returns nil if the browser was turned
// away.
func (s *Server) startBrowserSession(conn *websocket.Conn, source string) *session {
	ctx := context.Background()
	retirements := s.retirements.Load()
	conn.SetReadDeadline(time.Now().Add(helloTimeout))
	unblock := context.AfterFunc(s.ctx, func() { conn.SetReadDeadline(time.Now()) })
	_, data, err := conn.ReadMessage()
	if !unblock() || err != nil {
		conn.Close()
		return nil
	}
	f, err := parseBrowserFrame(data)
	if err == nil && f.MessageType != browserHello {
		err = errors.New("first frame must be a hello")
	}
	if err != nil {
		s.metrics.refused(refusedBadHello)
		closeConn(conn, wire.CloseProtocol, err.Error())
		return nil
	}
	before := readBefore{retirements: retirements}
	if f.UAID != "" {
		before.told = s.told.count(browserDeviceID(f.UAID)) // before the browser is read
	}
	dev, uaid, known, err := s.identifyBrowser(ctx, f.UAID, source)
	switch {
	case errors.Is(err, errTooManyDevices):
		closeConn(conn, wire.CloseRetryLater, "3600")
		return nil
	case err != nil:
		s.log.Error("browser hello failed", "err", err)
		closeConn(conn, wire.CloseRetryLater, "60")
		return nil
	}
	st, do := newSessionState(&wire.Hello{}, dev, s.sessionLimits(), s.cfg.Clock.Now())
	sess := s.newSession(conn, dev.ID, st)
	sess.browser = &browserLink{}
	reply := browserHelloReply{MessageType: browserHello, UAID: uaid, Status: http.StatusOK, UseWebPush: true,
		Broadcasts: json.RawMessage("{}")}
	if !s.goLive(ctx, sess, do, known, before, reply) {
		return nil
	}
	if s.log.Enabled(ctx, slog.LevelInfo) {
		sess.log().Info("browser connected", "known", known, "ack_bound", st.ackBound)
	}
	return sess
}

// identifyBrowser finds the browser whose uaid is uaid, or enrols a new
// one with a new uaid when uaid is empty, unknown or retired: Firefox then
// drops its subscriptions and tells their pages (pushsubscriptionchange),
// which is right, since the service knows none of them.
func (s *Server) identifyBrowser(ctx context.Context, uaid, source string) (dev store.Device, _ string, known bool, _ error) {
	if uaid != "" {
		d, err := s.cfg.Store.Device(ctx, browserDeviceID(uaid))
		switch {
		case err == nil:
			if subtle.ConstantTimeCompare(d.SecretHash, wire.DeviceKey(uaid)) == 1 && d.RetiredAt.IsZero() {
				return d, uaid, true, nil
			}
		case !errors.Is(err, store.ErrNotFound):
			return dev, "", false, err
		}
	}
	if s.enrolCapped(source) {
		// As for Herald devices (identify): count and create under one
		// lock.
		s.enrolMu.Lock()
		defer s.enrolMu.Unlock()
		ok, err := s.enrolAllowed(ctx, source)
		if err != nil {
			return dev, "", false, err
		}
		if !ok {
			s.log.Warn("browser enrolment refused: too many devices from one address", "source", source)
			return dev, "", false, errTooManyDevices
		}
	}
	uaid = newUAID()
	now := s.cfg.Clock.Now()
	dev = store.Device{ID: browserDeviceID(uaid), SecretHash: wire.DeviceKey(uaid), Source: source,
		CreatedAt: now, LastSeen: now, Power: "normal"}
	if err := s.cfg.Store.CreateDevice(ctx, dev); err != nil {
		return store.Device{}, "", false, err
	}
	s.log.Info("browser enrolled", "device", dev.ID, "source", source)
	return dev, uaid, false, nil
}

// browserRequest is a browser's frame that the session serves and answers:
// register, unregister, or the keepalive.
type browserRequest struct{ f *browserFrame }

// browserReply answers register, unregister and the keepalive ({}: every
// field empty).
type browserReply struct {
	MessageType  string `json:"messageType,omitempty"`
	ChannelID    string `json:"channelID,omitempty"`
	Status       int    `json:"status,omitempty"`
	PushEndpoint string `json:"pushEndpoint,omitempty"`
}

// browserNotification is one message written to a browser.
type browserNotification struct {
	MessageType string            `json:"messageType"`
	ChannelID   string            `json:"channelID"`
	Version     string            `json:"version"`
	Data        string            `json:"data,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
}

// serveBrowser answers a browser's request.
func (s *Server) serveBrowser(ctx context.Context, devID string, req browserRequest) browserReply {
	f := req.f
	switch f.MessageType {
	case browserRegister:
		return s.browserRegister(ctx, devID, f)
	case browserUnregister:
		res := browserReply{MessageType: browserUnregister, ChannelID: f.ChannelID, Status: http.StatusOK}
		ch, code := s.ownChannel(ctx, devID, browserChannelID(devID, f.ChannelID))
		switch code {
		case "":
			if err := s.cfg.Store.DeleteChannel(ctx, ch.ID); err != nil {
				res.Status = http.StatusInternalServerError
			}
		case wire.CodeNotFound:
			// Gone already: what the browser asked for is so.
		default:
			res.Status = http.StatusInternalServerError
		}
		return res
	}
	return browserReply{} // the keepalive is answered with {}
}

// browserRegister opens (or finds) the channel of a browser's
// subscription. A subscription made with an application server key takes
// only Web Push messages signed with that key (RFC 8292 §4).
func (s *Server) browserRegister(ctx context.Context, devID string, f *browserFrame) browserReply {
	res := browserReply{MessageType: browserRegister, ChannelID: f.ChannelID}
	fail := func(status int) browserReply {
		res.Status = status
		return res
	}
	var key string
	if f.Key != "" {
		var err error
		if key, err = webpush.NormalizeKey(f.Key); err != nil {
			return fail(http.StatusBadRequest)
		}
	}
	id := browserChannelID(devID, f.ChannelID)
	ch, err := s.cfg.Store.Channel(ctx, id)
	switch {
	case err == nil:
		if ch.DeviceID != devID || ch.VAPIDKey != key {
			// The same subscription with another key: the browser must
			// unsubscribe first, as it does.
			return fail(http.StatusConflict)
		}
	case errors.Is(err, store.ErrNotFound):
		n, err := s.cfg.Store.CountChannels(ctx, devID)
		if err != nil {
			return fail(http.StatusInternalServerError)
		}
		if n >= s.cfg.MaxChannelsPerDevice {
			return fail(http.StatusTooManyRequests)
		}
		ch = store.Channel{ID: id, DeviceID: devID, App: browserApp + f.ChannelID, Name: f.ChannelID,
			Token: newToken(24), VAPIDKey: key, CreatedAt: s.cfg.Clock.Now()}
		if err := s.cfg.Store.CreateChannel(ctx, ch); err != nil {
			return fail(http.StatusInternalServerError)
		}
	default:
		return fail(http.StatusInternalServerError)
	}
	res.Status, res.PushEndpoint = http.StatusOK, s.channelURI(ch)
	return res
}

// browserLink is what a browser's session keeps for its protocol: which
// messages were written and which of them the browser has acknowledged.
// A browser acknowledges message by message, in the order it has handled
// them, and the store deletes a device's queue up to a number: the
// session acknowledges up to the highest number below which every message
// written has been acknowledged. A message acknowledged above one that
// was not stays queued and is sent again on the next connection, under
// the same version, which Firefox recognises and does not deliver twice.
type browserLink struct {
	mu      sync.Mutex
	written []uint64 // written and not yet acknowledged in the store, ascending
	done    map[uint64]bool
}

// wrote records that the message numbered seq was written.
func (b *browserLink) wrote(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.written = append(b.written, seq)
}

// acked records the browser's acknowledgement of version and returns the
// number up to which the queue may now be acknowledged (0: no further
// than before). A version never written on this connection changes
// nothing.
func (b *browserLink) acked(version string) uint64 {
	seq, err := strconv.ParseUint(version, 10, 64)
	if err != nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, found := slices.BinarySearch(b.written, seq); !found {
		return 0
	}
	if b.done == nil {
		b.done = make(map[uint64]bool)
	}
	b.done[seq] = true
	n := 0
	for n < len(b.written) && b.done[b.written[n]] {
		delete(b.done, b.written[n])
		n++
	}
	if n == 0 {
		return 0
	}
	upTo := b.written[n-1]
	b.written = append(b.written[:0], b.written[n:]...)
	return upTo
}

// decode turns a browser's frame into what the session state steps on: a
// cumulative *wire.Ack, a browserRequest, a *wire.Hello (a second hello,
// which ends the session), or nil when there is nothing to do.
func (b *browserLink) decode(data []byte) (any, error) {
	f, err := parseBrowserFrame(data)
	if err != nil {
		return nil, err
	}
	switch f.MessageType {
	case browserHello:
		return &wire.Hello{}, nil
	case browserAck:
		var upTo uint64
		for _, u := range f.Updates {
			// Every code ends the message's delivery: 100 delivered,
			// 101 undecryptable and 102 not deliverable would be so
			// again.
			upTo = max(upTo, b.acked(u.Version))
		}
		if upTo == 0 {
			return nil, nil
		}
		return &wire.Ack{Type: wire.TypeAck, Seq: upTo}, nil
	case browserNack:
		// The page's service worker failed the push event: sending it
		// again would fail it again.
		if upTo := b.acked(f.Version); upTo > 0 {
			return &wire.Ack{Type: wire.TypeAck, Seq: upTo}, nil
		}
		return nil, nil
	case browserBroadcastOn:
		return nil, nil // this service has no broadcasts to tell of
	}
	return browserRequest{f}, nil
}

// writeBrowser writes a frame the session made in the browser's protocol:
// each notification of a batch as a message of its own.
func (sess *session) writeBrowser(v any) error {
	n, ok := v.(wire.Notify)
	if !ok {
		return sess.writeJSON(v)
	}
	for _, q := range n.Notifications {
		uuid, _ := strings.CutPrefix(q.ChannelID, sess.id)
		m := browserNotification{MessageType: browserNotify, ChannelID: uuid, Version: strconv.FormatUint(q.Seq, 10)}
		if q.Kind == string(mpns.KindWebPush) {
			m.Data = base64.RawURLEncoding.EncodeToString(q.Body)
			m.Headers = map[string]string{"encoding": "aes128gcm"}
		}
		sess.browser.wrote(q.Seq)
		if err := sess.writeJSON(m); err != nil {
			return err
		}
	}
	return nil
}

func (sess *session) writeJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sess.conn.SetWriteDeadline(time.Now().Add(sess.srv.cfg.WriteTimeout))
	return sess.conn.WriteMessage(websocket.TextMessage, b)
}
