package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/wire"
)

// CloseGoingAway is sent when the service shuts down or drops a device.
const CloseGoingAway = websocket.CloseGoingAway

var upgrader = websocket.Upgrader{
	// Small buffers: most devices are idle most of the time, and frames
	// larger than a buffer are still read and written correctly.
	ReadBufferSize:  512,
	WriteBufferSize: 1024,
	WriteBufferPool: &sync.Pool{},
	// Devices are not browsers; there is no origin to check.
	CheckOrigin: func(*http.Request) bool { return true },
}

// maxReplies bounds the answers waiting for the writer: a device that
// sends requests faster than it reads the answers is cut off.
const maxReplies = 64

// session is one device's live connection. Its read loop, write loop and
// keepalive are all in this file: readLoop owns reads, writeLoop owns every
// write except the pong that gorilla sends from the read side with
// WriteControl (which is safe to call concurrently).
//
// The writer runs only while there is something to write or a held
// notification to wait for: most devices are idle most of the time, and a
// parked goroutine's stack is most of what an idle device would cost. At
// most one writer runs at a time (writing), so writes are never
// concurrent; serveConn writes the welcome before any writer may start and
// the close frame after the last one has ended.
type session struct {
	srv  *Server
	conn *websocket.Conn
	id   string
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the session has ended

	kickc   chan struct{} // cap 1: wakes a writer waiting for a deadline
	writers sync.WaitGroup

	mu sync.Mutex
	// replies answer requests; wake says new notifications may be in the
	// store; both are for the writer.
	replies []any
	wake    bool
	// writing is set while a writer goroutine runs; open while writers
	// may be started (after the welcome, until the session ends).
	writing, open bool
	// stopping is set when the session is ending, so the read loop does
	// not push its deadline past the cut-off.
	stopping bool
	stopRead func() bool // unregisters the cut-off

	// sent is the highest seq written to the device. What is above it
	// comes from the store, never from a copy handed over by the accepting
	// request: the store promises (package store) that no lower number is
	// committed after a higher one, so what it holds has no hole a later
	// commit could fill, and a merged tile update replaced in the store
	// cannot be sent stale.
	sent      uint64
	power     string
	urgency   mpns.Urgency // the device's minimum: lower ones are held
	closeCode int
	closeText string
	lastPing  time.Time
	touched   time.Time // when last_seen was last written
	held      uint64    // the cluster's number for this session's Hold
	ackWait   ackWait   // for the ack latency metric

	// inbox holds what the store's committer has told of since the writer
	// last looked (session.committed); resyncing, that the writer must
	// read the store instead (the inbox overflowed, or the store asked).
	inbox     []store.Queued
	resyncing bool

	// qmu guards a copy of the device's queue above sent, so the writer
	// need not read the store for every notification: primed once it has
	// been read from the store, then kept up from the inbox. Only the
	// writer takes it. Lock order: qmu, then mu.
	qmu    sync.Mutex
	primed bool
	unsent []store.Queued
}

func (sess *session) powerLevel() string {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	return sess.power
}

// poke tells the writer that new notifications may be in the store.
func (sess *session) poke() {
	sess.mu.Lock()
	sess.wake = true
	sess.mu.Unlock()
	sess.kick()
}

// kick starts a writer if none runs, or wakes the one waiting.
func (sess *session) kick() {
	sess.mu.Lock()
	if sess.open && !sess.writing {
		sess.writing = true
		sess.writers.Add(1)
		go sess.writeLoop()
	}
	sess.mu.Unlock()
	select {
	case sess.kickc <- struct{}{}:
	default:
	}
}

// stop ends the session with a close frame (sent by the writer).
func (sess *session) stop(code int) {
	sess.mu.Lock()
	if sess.closeCode == 0 {
		sess.closeCode = code
	}
	sess.mu.Unlock()
	sess.cancel()
}

func (sess *session) stopWith(code int, text string) {
	sess.mu.Lock()
	if sess.closeCode == 0 {
		sess.closeCode, sess.closeText = code, text
	}
	sess.mu.Unlock()
	sess.cancel()
}

// handleDevice upgrades a device's connection and runs its session.
func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request) {
	if s.shed(w) {
		return
	}
	helloDone, ok := s.admitHello(w, r) // prehello.go
	if !ok {
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		helloDone()
		return // the upgrader has answered with an HTTP error
	}
	if tcp, ok := conn.NetConn().(*net.TCPConn); ok {
		// The device owns the heartbeat; kernel keepalive probes from
		// this side would wake its radio on a schedule it cannot control.
		tcp.SetKeepAlive(false)
	}
	conn.SetReadLimit(wire.MaxFrameSize)
	source := sourceOf(r.RemoteAddr)
	s.mu.Lock()
	if s.closed {
		after := s.retryDelayLocked()
		s.mu.Unlock()
		closeConn(conn, wire.CloseRetryLater, strconv.Itoa(after))
		helloDone()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	// The session runs on its own goroutines and this handler returns, so
	// net/http lets go of the connection's request buffers (8 KiB) and
	// its serving goroutine: an idle device costs only what it uses.
	go func() {
		defer s.wg.Done()
		s.serveConn(conn, source, helloDone)
	}()
}

func (s *Server) serveConn(conn *websocket.Conn, source string, helloDone func()) {
	sess := s.startSession(conn, source)
	helloDone() // welcomed or turned away: no longer waiting for a hello
	if sess == nil {
		conn.Close()
		return
	}
	sess.prepareReads()
	// The read loop gets a goroutine of its own, so that while it waits
	// for the device its stack holds only itself and the socket read
	// beneath it. Go halves a goroutine's stack at a collection when it
	// uses less than a quarter of it, and an idle device's read loop
	// waits for hours: kept shallow, its stack settles at 4 KiB rather
	// than the 8 KiB that starting the session and handling frames grow
	// it to (BenchmarkIdleDevices measures it).
	s.wg.Add(1)
	go sess.readLoop()
}

// startSession challenges the device, reads its hello, identifies it,
// makes its session the device's one live session and writes the welcome.
// It returns nil if the device was turned away.
func (s *Server) startSession(conn *websocket.Conn, source string) *session {
	ctx := context.Background()
	retirements := s.retirements.Load()
	hello, dev, secret, nonce := s.handshake(ctx, conn, source)
	if hello == nil {
		return nil
	}

	sctx, cancel := context.WithCancel(ctx)
	sess := &session{
		srv: s, conn: conn, id: dev.ID, ctx: sctx, cancel: cancel,
		log:   s.log.With("device", dev.ID),
		done:  make(chan struct{}),
		kickc: make(chan struct{}, 1),
		sent:  hello.LastSeq,
		power: dev.Power,
	}
	sess.urgency = wire.MinUrgency(hello.Urgency)
	// Most hellos repeat the level the store has: writing it again would
	// cost each of them a commit.
	if hello.Power != "" && hello.Power != dev.Power {
		sess.power = hello.Power
		if err := s.cfg.Store.SetPower(ctx, dev.ID, hello.Power); err != nil {
			sess.log.Warn("saving power level failed", "err", err)
		}
	}

	s.mu.Lock()
	if s.closed {
		after := s.retryDelayLocked()
		s.mu.Unlock()
		cancel()
		closeConn(conn, wire.CloseRetryLater, strconv.Itoa(after))
		return nil
	}
	old := s.sessions[dev.ID]
	s.sessions[dev.ID] = sess
	s.mu.Unlock()
	// Counted before the welcome, so a device holding its welcome is counted.
	s.metrics.connected(secret == "")
	if old != nil {
		old.stopWith(wire.CloseReplaced, "another connection for this device")
		<-old.done
	}
	if s.retiredSince(ctx, dev.ID, retirements) {
		cancel()
		sess.end()
		closeConn(conn, wire.CloseUnauthorized, wire.RefusedRetired)
		return nil
	}
	if p := s.cfg.Presence; p != nil {
		// Other nodes learn the device is here, and one holding it
		// lets go.
		held, err := p.Hold(ctx, dev.ID)
		if err != nil {
			sess.log.Warn("telling the cluster of the device failed", "err", err)
		}
		sess.mu.Lock()
		sess.held = held
		sess.mu.Unlock()
	}
	// Neither the touch nor the hello's ack is waited for: each would
	// cost every hello a commit, and a node taking over another's devices
	// takes thousands at once. Nothing depends on them being durable
	// before the welcome: while the session lives its device counts as
	// connected whatever last_seen says, and its end writes last_seen
	// durably; the writer sends only what is above the hello's last_seq,
	// so the queue's copy of what the device has applied is only trimmed
	// by the ack (a crash that loses it costs a resend the device skips by
	// number). A last_seen fresher than the session's own refresh period
	// (touch) is not written at all: a node taking back its devices after
	// a restart finds them all seen a moment ago, at their sessions' ends.
	now := s.cfg.Clock.Now()
	sess.touched = now
	switch {
	case now.Sub(dev.LastSeen) >= s.cfg.InactiveAfter/8:
		s.cfg.Store.TouchLater(dev.ID, now)
	case dev.LastSeen.Before(now):
		sess.touched = dev.LastSeen // the refresh comes due from there
	}
	if hello.LastSeq > 0 {
		s.cfg.Store.AckLater(dev.ID, hello.LastSeq)
	}

	welcome := wire.Welcome{Type: wire.TypeWelcome, ID: dev.ID, Secret: secret,
		MinHeartbeat: int(s.cfg.MinHeartbeat / time.Second), MaxIdle: int(s.cfg.MaxIdle / time.Second)}
	if secret == "" {
		welcome.Proof = wire.WelcomeProof(dev.SecretHash, nonce, hello.Nonce, dev.ID)
	}
	// Welcome goes out before any writer starts, so it is the first frame.
	if err := sess.write(welcome); err != nil {
		cancel()
		sess.end()
		return nil
	}
	sess.mu.Lock()
	sess.open = true
	sess.mu.Unlock()
	// The first writer's look at the store sends the backlog, in order,
	// before anything accepted later.
	sess.poke()
	sess.log.Info("device connected", "last_seq", hello.LastSeq)
	return sess
}

// finish ends the session once its read loop has: it waits for the
// writer and says goodbye with the close frame.
func (sess *session) finish() {
	defer sess.srv.wg.Done()
	defer sess.conn.Close()
	sess.stopRead()
	sess.cancel()
	sess.mu.Lock()
	sess.open = false
	sess.mu.Unlock()
	sess.writers.Wait()
	sess.mu.Lock()
	code, text := sess.closeCode, sess.closeText
	sess.mu.Unlock()
	if code == 0 {
		code = websocket.CloseGoingAway
	}
	closeConn(sess.conn, code, text)
	sess.end()
	sess.log.Info("device disconnected")
}

// end records when the device was last seen, then makes the session no
// longer the device's live one and marks it over. In that order: whoever
// sees the device gone must also see its last_seen, or a sender could be
// told 412 (or not) from a stale time.
func (sess *session) end() {
	s := sess.srv
	if err := s.cfg.Store.TouchDevice(context.Background(), sess.id, s.cfg.Clock.Now()); err != nil {
		sess.log.Warn("recording last seen failed", "err", err)
	}
	s.mu.Lock()
	live := s.sessions[sess.id] == sess
	if live {
		delete(s.sessions, sess.id)
	}
	s.mu.Unlock()
	if p := s.cfg.Presence; p != nil && live {
		if err := p.Release(context.Background(), sess.id); err != nil {
			sess.log.Warn("telling the cluster the device left failed", "err", err)
		}
	}
	close(sess.done)
}

// prepareReads sets what the read loop needs: the read deadline, kept
// pushed out by every frame and ping; the ping handler, which answers
// with a pong and enforces the heartbeat floor; and the cut-off when the
// session ends.
func (sess *session) prepareReads() {
	conn := sess.conn
	sess.extendRead()
	conn.SetPingHandler(func(data string) error {
		now := sess.srv.cfg.Clock.Now()
		sess.mu.Lock()
		last := sess.lastPing
		sess.lastPing = now
		sess.mu.Unlock()
		// A little slack, since the device's clock and ours drift apart.
		if !last.IsZero() && now.Sub(last) < sess.srv.cfg.MinHeartbeat*9/10 {
			sess.stopWith(websocket.ClosePolicyViolation,
				"heartbeat more frequent than "+strconv.Itoa(int(sess.srv.cfg.MinHeartbeat/time.Second))+"s")
			return nil
		}
		sess.extendRead()
		sess.touch(now)
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(sess.srv.cfg.WriteTimeout))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return err
		}
		return nil
	})
	// Ending the session cuts the read loop's wait short.
	sess.stopRead = context.AfterFunc(sess.ctx, func() {
		sess.mu.Lock()
		sess.stopping = true
		sess.conn.SetReadDeadline(time.Now())
		sess.mu.Unlock()
	})
}

// extendRead gives the device MaxIdle more to send its next frame or ping,
// unless the session is ending.
func (sess *session) extendRead() {
	sess.mu.Lock()
	if !sess.stopping {
		sess.conn.SetReadDeadline(time.Now().Add(sess.srv.cfg.MaxIdle))
	}
	sess.mu.Unlock()
}

// readLoop is the session's reading goroutine: it waits for each frame and
// hands it to frame, which does the work in frames of its own (see
// serveConn for why this one stays small).
func (sess *session) readLoop() {
	defer sess.finish()
	for {
		typ, r, err := sess.conn.NextReader()
		if err != nil {
			sess.readEnded(err)
			return
		}
		if !sess.frame(typ, r) {
			return
		}
	}
}

func (sess *session) readEnded(err error) {
	if sess.ctx.Err() == nil && !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
		sess.log.Debug("read ended", "err", err)
	}
}

// frame reads, decodes and handles one frame; false ends the session.
func (sess *session) frame(typ int, r io.Reader) bool {
	data, err := io.ReadAll(r)
	if err != nil {
		sess.readEnded(err)
		return false
	}
	sess.extendRead()
	if typ != websocket.TextMessage {
		sess.stopWith(wire.CloseProtocol, "text frames only")
		return false
	}
	frame, err := wire.DecodeDevice(data)
	if err != nil {
		sess.stopWith(wire.CloseProtocol, err.Error())
		return false
	}
	if err := sess.handle(frame); err != nil {
		sess.log.Warn("frame failed", "err", err)
		sess.stopWith(websocket.CloseInternalServerErr, "internal error")
		return false
	}
	return sess.ctx.Err() == nil
}

// touch keeps last_seen fresh while the device stays connected. It is
// written at connect and disconnect too, but a service killed outright never
// writes the disconnect, and after a restart a device connected for longer
// than InactiveAfter would be answered 412 until it reconnects.
func (sess *session) touch(now time.Time) {
	every := sess.srv.cfg.InactiveAfter / 8
	sess.mu.Lock()
	due := now.Sub(sess.touched) >= every
	if due {
		sess.touched = now
	}
	sess.mu.Unlock()
	if !due {
		return
	}
	if err := sess.srv.cfg.Store.TouchDevice(sess.ctx, sess.id, now); err != nil && sess.ctx.Err() == nil {
		sess.log.Warn("recording last seen failed", "err", err)
	}
}

// reply queues a frame for the writer.
func (sess *session) reply(v any) {
	sess.mu.Lock()
	full := len(sess.replies) >= maxReplies
	if !full {
		sess.replies = append(sess.replies, v)
	}
	sess.mu.Unlock()
	if full {
		sess.stopWith(wire.CloseProtocol, "too many requests waiting for answers")
		return
	}
	sess.kick()
}

func (sess *session) handle(frame any) error {
	ctx := sess.ctx
	store := sess.srv.cfg.Store
	switch f := frame.(type) {
	case *wire.Hello:
		sess.stopWith(wire.CloseProtocol, "hello sent twice")
	case *wire.Ack:
		sess.touch(sess.srv.cfg.Clock.Now())
		sess.mu.Lock()
		if f.Seq > sess.sent {
			sess.mu.Unlock()
			sess.stopWith(wire.CloseProtocol, "ack beyond what was sent")
			return nil
		}
		sess.ackedLocked(f.Seq)
		sess.mu.Unlock()
		// Not waited for: a lost ack only means a resend the device
		// skips by sequence number, and waiting would hold up this
		// device's reads for a commit.
		store.AckLater(sess.id, f.Seq)
	case *wire.Register:
		sess.reply(sess.srv.register(ctx, sess.id, f))
	case *wire.Unregister:
		sess.reply(sess.srv.unregister(ctx, sess.id, f))
	case *wire.Bind:
		sess.reply(sess.srv.bind(ctx, sess.id, f))
	case *wire.State:
		sess.mu.Lock()
		sess.power = f.Power
		sess.mu.Unlock()
		sess.setUrgency(wire.MinUrgency(f.Urgency))
		res := wire.Result{Type: wire.TypeResult, ReqID: f.ReqID}
		if err := store.SetPower(ctx, sess.id, f.Power); err != nil {
			res.Code, res.Message = wire.CodeServerError, "saving power level failed"
		}
		sess.reply(res)
	default:
		return fmt.Errorf("unexpected frame %T", frame)
	}
	return nil
}

// writeLoop writes what is waiting: replies, then notification batches
// when they are due. It ends when nothing is left to write and nothing is
// held for a deadline, or when the session ends; kick starts another.
func (sess *session) writeLoop() {
	defer sess.writers.Done()
	clk := sess.srv.cfg.Clock
	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var held bool // notifications wait for a deadline the timer is set for
	for {
		sess.mu.Lock()
		replies, wake := sess.replies, sess.wake
		sess.replies, sess.wake = nil, false
		if len(replies) == 0 && !wake && !held || sess.ctx.Err() != nil {
			sess.writing = false
			sess.mu.Unlock()
			return
		}
		sess.mu.Unlock()
		for _, v := range replies {
			if err := sess.write(v); err != nil {
				sess.cancel()
				break
			}
		}
		if wake || held {
			batches, next, err := sess.due(clk.Now())
			if err != nil {
				if sess.ctx.Err() == nil {
					sess.log.Error("reading queue failed", "err", err)
					sess.stopWith(wire.CloseRetryLater, "30")
				}
				continue
			}
			for _, b := range batches {
				if err := sess.write(wire.Notify{Type: wire.TypeNotify, Notifications: b}); err != nil {
					sess.cancel()
					break
				}
			}
			held = !next.IsZero()
			if held {
				if timer == nil {
					timer = clk.NewTimer(next.Sub(clk.Now()))
				} else {
					timer.Reset(next.Sub(clk.Now()))
				}
				// Held until the deadline, a kick, or the end.
				select {
				case <-timer.C():
				case <-sess.kickc:
				case <-sess.ctx.Done():
				}
			}
		}
	}
}

func (sess *session) write(v any) error {
	b, err := wire.Encode(v)
	if err != nil {
		return err
	}
	sess.conn.SetWriteDeadline(time.Now().Add(sess.srv.cfg.WriteTimeout))
	return sess.conn.WriteMessage(websocket.TextMessage, b)
}

func closeConn(conn *websocket.Conn, code int, text string) {
	msg := websocket.FormatCloseMessage(code, text)
	conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	conn.Close()
}
