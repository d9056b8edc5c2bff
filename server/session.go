package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

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

// session runs one device's connection around its sessionState, which
// holds the rules: the runner reads frames and pings and hands them to the
// state, writes what the state says to write, and ends the connection
// once, in finish. The read loop, the writer and the keepalive are all in
// this file. readLoop owns reads; writeLoop owns every write except the
// pong, which gorilla sends from the read side with WriteControl (safe to
// call beside the one writer).
//
// The writer runs only while there is something to write or a deadline to
// wait for: most devices are idle most of the time, and a parked
// goroutine's stack is most of what an idle device would cost. At most one
// runs at a time (box.writing), so writes are never concurrent;
// startSession writes the welcome before any writer may start, and finish
// the close frame after the last one has ended.
//
// Two locks, in this order: mu guards st, held by whoever steps it (the
// read loop, the writer and cancelMessage), the writer's look at the queue
// included, which may read the store; box is the mailbox of what other
// goroutines hand the session without waiting for that (the store's
// committer, a takeover, whoever ends the session), and is never held
// while taking mu or waiting for anything.
type session struct {
	srv  *Server
	conn *websocket.Conn
	id   string

	quit chan struct{} // closed when the session is to end (close)
	done chan struct{} // closed when it has ended

	kickc   chan struct{} // cap 1: wakes a writer waiting for a deadline
	writers sync.WaitGroup

	mu sync.Mutex
	st *sessionState

	box mailbox

	wait readWait // the read goroutine's shallow wait (readwait.go)
	// browser is set when the device is a browser speaking its own push
	// protocol (browser.go): frames are read and written in that protocol,
	// and its acks by message are turned into the state's cumulative one.
	browser *browserLink
}

// mailbox is what a session is handed from outside its own goroutines.
type mailbox struct {
	mu sync.Mutex
	// look says the writer is to look at the queue: something was
	// committed (inbox), the store asked for a read of its own (resync),
	// or the device's minimum urgency dropped.
	look   bool
	inbox  []store.Queued
	resync bool
	// writing is set while a writer goroutine runs; open while writers
	// may be started (after the welcome, until the session ends).
	writing, open bool
	// end is why the session ends (the first reason given wins); once it
	// is set, quit is closed and the read loop's deadline stays cut short.
	end *closeReason
	// abort ends the store call the writer is waiting for, if any
	// (queueReads).
	abort  context.CancelFunc
	holdNo uint64 // the cluster's number for this session's Hold
	// power and urgency are the state's, for the accept path, which must
	// not wait for a look at the queue (mu) to answer a sender.
	power   string
	urgency mpns.Urgency
}

// log is the service's logger for this device's session. Built when
// used, since sessions seldom log and an idle device should not carry a
// logger of its own; the messages of every connect and disconnect are
// built only when their level is enabled (With formats the device's
// attribute at once, whatever the level).
func (sess *session) log() *slog.Logger { return sess.srv.log.With("device", sess.id) }

// close ends the session with the close frame (code, text); the first
// reason given is the one sent. Any goroutine may call it, holding mu or
// not; finish, on the read loop, does the ending. The read loop's wait is
// cut short here rather than by a context.AfterFunc, which would cost an
// idle device its context's map of children and a done channel.
func (sess *session) close(code int, text string) {
	sess.box.mu.Lock()
	defer sess.box.mu.Unlock()
	if sess.box.end != nil {
		return
	}
	sess.box.end = &closeReason{code, text}
	close(sess.quit)
	sess.conn.SetReadDeadline(time.Now())
	if sess.box.abort != nil {
		sess.box.abort()
	}
}

// ended says whether the session is ending.
func (sess *session) ended() bool {
	select {
	case <-sess.quit:
		return true
	default:
		return false
	}
}

// queueReads is the store as the session's writer reads the device's
// queue: each call ends with the server or the session, so a session's
// end (another connection taking over, say) does not wait for a slow
// read. The context is made per call rather than kept with the session:
// the driver attaches to the context it is given (context.AfterFunc), and
// a context kept for the session would keep that for as long as the
// device stays connected.
type queueReads struct{ sess *session }

func (q queueReads) call() (context.Context, func()) {
	sess := q.sess
	ctx, cancel := context.WithCancel(sess.srv.ctx)
	sess.box.mu.Lock()
	if sess.box.end != nil {
		cancel()
	} else {
		sess.box.abort = cancel
	}
	sess.box.mu.Unlock()
	return ctx, func() {
		sess.box.mu.Lock()
		sess.box.abort = nil
		sess.box.mu.Unlock()
		cancel()
	}
}

func (q queueReads) Pending(deviceID string, after uint64) ([]store.Queued, error) {
	ctx, done := q.call()
	defer done()
	return q.sess.srv.cfg.Store.Pending(ctx, deviceID, after)
}

func (q queueReads) Requeue(deviceID string, seq uint64) (store.Queued, error) {
	ctx, done := q.call()
	defer done()
	return q.sess.srv.cfg.Store.Requeue(ctx, deviceID, seq)
}

func (sess *session) closeFor(r *closeReason) { sess.close(r.code, r.text) }

// kick starts a writer if none runs, or wakes the one waiting; look says
// it is to look at the queue too.
func (sess *session) kick(look bool) {
	sess.box.mu.Lock()
	sess.box.look = sess.box.look || look
	sess.startWriterLocked()
	sess.box.mu.Unlock()
	sess.nudge()
}

// startWriterLocked starts a writer unless one runs; box.mu is held.
func (sess *session) startWriterLocked() {
	if sess.box.open && !sess.box.writing {
		sess.box.writing = true
		sess.writers.Add(1)
		go sess.writeLoop()
	}
}

// nudge wakes a writer waiting for a deadline, if one is.
func (sess *session) nudge() {
	select {
	case sess.kickc <- struct{}{}:
	default:
	}
}

// committed hands a notification the store has just committed to the
// session and wakes the writer, which adds it to its copy of the queue
// (mirror). It runs on the store's committer, in sequence order for each
// device, so it takes only the mailbox, which nothing holds while waiting.
func (sess *session) committed(q store.Queued) {
	sess.box.mu.Lock()
	switch {
	case sess.box.resync:
		// The writer reads the store anyway.
	case len(sess.box.inbox) < maxMirrored:
		sess.box.inbox = append(sess.box.inbox, q)
	default:
		sess.box.inbox, sess.box.resync = nil, true
	}
	sess.box.look = true
	sess.startWriterLocked()
	sess.box.mu.Unlock()
	sess.nudge()
}

// resync makes the writer read the store again rather than trust its copy,
// for a store that may have missed telling of commits.
func (sess *session) resync() {
	sess.box.mu.Lock()
	sess.box.inbox, sess.box.resync, sess.box.look = nil, true, true
	sess.startWriterLocked()
	sess.box.mu.Unlock()
	sess.nudge()
}

// takenOver ends the session if another node's Hold, numbered held,
// supersedes its own.
func (sess *session) takenOver(held uint64) {
	sess.box.mu.Lock()
	mine := sess.box.holdNo
	sess.box.mu.Unlock()
	if r := supersedes(mine, held); r != nil {
		sess.closeFor(r)
	}
}

func (sess *session) powerLevel() string {
	sess.box.mu.Lock()
	defer sess.box.mu.Unlock()
	return sess.box.power
}

// heldBack says whether a queued notification of urgency u waits for the
// device's minimum to drop.
func (sess *session) heldBack(u int) bool {
	sess.box.mu.Lock()
	defer sess.box.mu.Unlock()
	return u < int(sess.box.urgency)
}

// publish copies what the accept path reads from the state; the caller
// holds mu.
func (sess *session) publish() {
	sess.box.mu.Lock()
	sess.box.power, sess.box.urgency = sess.st.power, sess.st.urgency
	sess.box.mu.Unlock()
}

// handleDevice upgrades a device's connection and runs its session.
// keepAliveOff says the connection came from a listener with TCP
// keepalive off already (Listen), so turning it off is not another system
// call at every hello.
func (s *Server) handleDevice(w http.ResponseWriter, r *http.Request, keepAliveOff bool) {
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
	if tcp, ok := conn.NetConn().(*net.TCPConn); ok && !keepAliveOff {
		// The device owns the heartbeat; kernel keepalive probes from
		// this side would wake its radio on a schedule it cannot control.
		tcp.SetKeepAlive(false)
	}
	conn.SetReadLimit(wire.MaxFrameSize)
	source := sourceOf(r.RemoteAddr)
	if !s.holdConn(conn, helloDone) {
		return
	}
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
	sess.wait = newReadWait(conn)
	s.wg.Add(1)
	go sess.park()
}

// startSession challenges the device, reads its hello, identifies it,
// makes its session the device's one live session and writes the welcome.
// It returns nil if the device was turned away.
func (s *Server) startSession(conn *websocket.Conn, source string) *session {
	ctx := context.Background()
	before := readBefore{retirements: s.retirements.Load()}
	g, ok := s.handshake(ctx, conn, source)
	if !ok {
		return nil
	}
	before.told = g.told
	hello, dev := g.hello, g.dev
	st, do := newSessionState(hello, dev, s.sessionLimits(), s.cfg.Clock.Now())
	sess := s.newSession(conn, dev.ID, st)
	welcome := wire.Welcome{Type: wire.TypeWelcome, ID: dev.ID, Secret: g.secret,
		MinHeartbeat: int(s.cfg.MinHeartbeat / time.Second), MaxIdle: int(s.cfg.MaxIdle / time.Second)}
	if g.secret == "" {
		welcome.Proof = wire.WelcomeProof(dev.SecretHash, g.nonce, hello.Nonce, dev.ID)
	}
	if !s.goLive(ctx, sess, do, g.secret == "", before, welcome) {
		return nil
	}
	if s.log.Enabled(ctx, slog.LevelInfo) {
		sess.log().Info("device connected", "last_seq", hello.LastSeq, "ack_bound", st.ackBound)
	}
	return sess
}

// readBefore is what the service had seen before it read a device at
// hello; the session going live checks what changed since.
type readBefore struct {
	retirements uint64 // Server.retirements
	told        uint64 // the device's commitsTold count; 0 for a device enrolled
}

func (s *Server) newSession(conn *websocket.Conn, id string, st *sessionState) *session {
	sess := &session{
		srv: s, conn: conn, id: id,
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		kickc: make(chan struct{}, 1),
		st:    st,
	}
	sess.box.power, sess.box.urgency = st.power, st.urgency
	return sess
}

// goLive makes an identified device's session its one live session (a
// Herald device's or a browser's), writes the first frame (welcome) and
// starts the writer on the backlog. known says the device was not enrolled
// by this connection. It reports false if the device was turned away or
// the welcome could not be written.
func (s *Server) goLive(ctx context.Context, sess *session, do started, known bool, before readBefore, welcome any) bool {
	conn, st := sess.conn, sess.st
	if do.savePower {
		if err := s.cfg.Store.SetPower(ctx, sess.id, st.power); err != nil {
			sess.log().Warn("saving power level failed", "err", err)
		}
	}

	s.mu.Lock()
	if s.closed {
		after := s.retryDelayLocked()
		s.mu.Unlock()
		closeConn(conn, wire.CloseRetryLater, strconv.Itoa(after))
		return false
	}
	old := s.sessions[sess.id]
	s.sessions[sess.id] = sess
	s.mu.Unlock()
	// Counted before the welcome, so a device holding its welcome is counted.
	s.metrics.connected(known)
	if old != nil {
		old.close(wire.CloseReplaced, "another connection for this device")
		<-old.done
	}
	// Live now: every commit told from here on reaches the session. If
	// none was told for the device since it was read, and that read
	// showed nothing queued above what it has applied, its queue is
	// empty and the writer need not read it (firstlook.go).
	primed := known && s.queueKnownEmpty(sess.id, do, before.told)
	if primed {
		// Under mu: no writer runs yet, but a sender's cancellation
		// may find the session live already (forget).
		sess.mu.Lock()
		st.primeEmpty()
		sess.mu.Unlock()
	}
	if s.retiredSince(ctx, sess.id, before.retirements) {
		sess.release()
		closeConn(conn, wire.CloseUnauthorized, wire.RefusedRetired)
		return false
	}
	if p := s.cfg.Presence; p != nil {
		// Other nodes learn the device is here, and one holding it
		// lets go.
		held, err := p.Hold(ctx, sess.id)
		if err != nil {
			sess.log().Warn("telling the cluster of the device failed", "err", err)
		}
		sess.box.mu.Lock()
		sess.box.holdNo = held
		sess.box.mu.Unlock()
	}
	if !do.touch.IsZero() {
		s.cfg.Store.TouchLater(sess.id, do.touch)
	}
	if do.ack > 0 {
		s.cfg.Store.AckLater(sess.id, do.ack)
	}

	// Welcome goes out before any writer starts, so it is the first frame.
	if err := sess.write(welcome); err != nil {
		sess.release()
		return false
	}
	// The first writer's look at the store sends the backlog, in order,
	// before anything accepted later. A session that knows its queue is
	// empty starts a writer only for what was committed since it became
	// live (committed set look, and started none while closed).
	sess.box.mu.Lock()
	sess.box.open = true
	sess.box.look = sess.box.look || !primed
	if sess.box.look {
		sess.startWriterLocked()
	}
	sess.box.mu.Unlock()
	return true
}

// finish ends the session once its read loop has: it waits for the
// writer and says goodbye with the close frame. It is the one place a
// session that started ends.
func (sess *session) finish() {
	defer sess.srv.wg.Done()
	defer sess.conn.Close()
	sess.close(websocket.CloseGoingAway, "")
	sess.box.mu.Lock()
	sess.box.open = false
	sess.box.mu.Unlock()
	sess.writers.Wait()
	sess.box.mu.Lock()
	end := sess.box.end
	sess.box.mu.Unlock()
	if end == nil {
		end = &closeReason{websocket.CloseGoingAway, ""}
	}
	closeConn(sess.conn, end.code, end.text)
	sess.release()
	if sess.srv.log.Enabled(context.Background(), slog.LevelInfo) {
		sess.log().Info("device disconnected", "code", end.code, "reason", end.text)
	}
}

// release records when the device was last seen, then makes the session
// no longer the device's live one and marks it over. In that order:
// whoever sees the device gone must also see its last_seen, or a sender
// could be told 412 (or not) from a stale time.
func (sess *session) release() {
	s := sess.srv
	if err := s.cfg.Store.TouchDevice(context.Background(), sess.id, s.cfg.Clock.Now()); err != nil {
		sess.log().Warn("recording last seen failed", "err", err)
	}
	s.mu.Lock()
	live := s.sessions[sess.id] == sess
	if live {
		delete(s.sessions, sess.id)
	}
	s.mu.Unlock()
	if p := s.cfg.Presence; p != nil && live {
		if err := p.Release(context.Background(), sess.id); err != nil {
			sess.log().Warn("telling the cluster the device left failed", "err", err)
		}
	}
	close(sess.done)
}

// prepareReads sets what the read loop needs: the read deadline, kept
// pushed out by every frame and ping (and cut short by close), and the
// ping handler, which answers with a pong and enforces the heartbeat
// floor.
func (sess *session) prepareReads() {
	conn := sess.conn
	sess.extendRead()
	conn.SetPingHandler(sess.pinged)
}

// pinged steps the state with a ping and answers it with a pong; gorilla
// calls it for a ping it reads, park for one it takes off the socket.
func (sess *session) pinged(data string) error {
	sess.mu.Lock()
	do := sess.st.ping(sess.srv.cfg.Clock.Now())
	sess.mu.Unlock()
	if do.end != nil {
		sess.closeFor(do.end)
		return nil
	}
	sess.extendRead()
	sess.touch(do.touch)
	err := sess.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(sess.srv.cfg.WriteTimeout))
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		return err
	}
	return nil
}

// extendRead gives the device MaxIdle more to send its next frame or ping,
// unless the session is ending.
func (sess *session) extendRead() {
	sess.box.mu.Lock()
	if sess.box.end == nil {
		sess.conn.SetReadDeadline(time.Now().Add(sess.srv.cfg.MaxIdle))
	}
	sess.box.mu.Unlock()
}

// readLoop is the session's reading goroutine: it waits for each frame and
// hands it to frame, which does the work in frames of its own (see
// serveConn for why this one stays small).
func (sess *session) readLoop() {
	for {
		typ, r, err := sess.conn.NextReader()
		if err != nil {
			sess.readEnded(err)
			sess.finish()
			return
		}
		if !sess.frame(typ, r) {
			sess.finish()
			return
		}
		if sess.wait.idle() {
			// The device has nothing more on its way: wait on a fresh
			// goroutine, whose stack has not grown (readwait.go).
			go sess.park()
			return
		}
	}
}

// park waits, on a goroutine of its own that does nothing else, until the
// device sends something, then reads it. A parked idle device then costs
// a 2 KiB stack rather than the 4 KiB a goroutine keeps once NextReader
// and handling a frame have grown it: Go halves a stack at a collection
// only while less than a quarter of it is in use, which a goroutine
// parked in the poller never is of 2 KiB.
//
// A ping (a device's heartbeat, its most common frame by far) is taken
// here when it is whole on the socket: read by NextReader, which reads on
// to the next data frame, it would leave the goroutine parked deep again.
func (sess *session) park() {
	sess.wait.wait()
	data, ok, err := sess.wait.takePing()
	if ok {
		err = sess.pinged(data)
	}
	if ok || err != nil {
		if err != nil {
			sess.readEnded(err)
			sess.finish()
			return
		}
		go sess.park()
		return
	}
	sess.readLoop()
}

func (sess *session) readEnded(err error) {
	if !sess.ended() && !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) &&
		sess.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		sess.log().Debug("read ended", "err", err)
	}
}

// frame reads and decodes one frame, steps the state with it and does
// what the step says; false ends the session.
func (sess *session) frame(typ int, r io.Reader) bool {
	data, err := io.ReadAll(r)
	if err != nil {
		sess.readEnded(err)
		return false
	}
	sess.extendRead()
	if typ != websocket.TextMessage {
		sess.close(wire.CloseProtocol, "text frames only")
		return false
	}
	var f any
	if sess.browser != nil {
		f, err = sess.browser.decode(data)
	} else {
		f, err = wire.DecodeDevice(data)
	}
	if err != nil {
		sess.close(wire.CloseProtocol, err.Error())
		return false
	}
	if f == nil {
		return !sess.ended() // a browser's frame that needs nothing done
	}
	sess.mu.Lock()
	do := sess.st.frame(f, sess.srv.cfg.Clock.Now())
	if do.published {
		sess.publish()
	}
	sess.mu.Unlock()
	if do.end != nil {
		sess.closeFor(do.end)
		return false
	}
	sess.touch(do.touch)
	if do.acked {
		sess.srv.metrics.ackLatency.Observe(do.ackLatency.Seconds())
	}
	if do.ack > 0 {
		sess.srv.cfg.Store.AckLater(sess.id, do.ack)
	}
	if do.request != nil {
		v := sess.serve(do.request)
		sess.mu.Lock()
		end := sess.st.reply(v)
		sess.mu.Unlock()
		if end != nil {
			sess.closeFor(end)
			return false
		}
		sess.kick(do.wake)
	} else if do.wake {
		sess.kick(true)
	} else if do.nudge {
		sess.nudge()
	}
	return !sess.ended()
}

// serve answers a device's request.
func (sess *session) serve(req any) any {
	// The server's context, not one of the session's own (see queueReads):
	// a request the session's end interrupts is only answered the sooner
	// for a device that will not read the answer.
	s, ctx := sess.srv, sess.srv.ctx
	switch f := req.(type) {
	case *wire.Register:
		return s.register(ctx, sess.id, f)
	case *wire.Unregister:
		return s.unregister(ctx, sess.id, f)
	case *wire.Bind:
		return s.bind(ctx, sess.id, f)
	case browserRequest:
		return s.serveBrowser(ctx, sess.id, f)
	case *wire.State:
		res := wire.Result{Type: wire.TypeResult, ReqID: f.ReqID}
		if err := s.cfg.Store.SetPower(ctx, sess.id, f.Power); err != nil {
			res.Code, res.Message = wire.CodeServerError, "saving power level failed"
		}
		return res
	}
	panic(fmt.Sprintf("session: no answer for %T", req)) // sessionState.frame asks only for the above
}

// touch writes last_seen at when, unless it is zero.
func (sess *session) touch(when time.Time) {
	if when.IsZero() {
		return
	}
	if err := sess.srv.cfg.Store.TouchDevice(sess.srv.ctx, sess.id, when); err != nil && !sess.ended() {
		sess.log().Warn("recording last seen failed", "err", err)
	}
}

// writeLoop writes what the state says: answers, then notification
// batches when they are due. It ends when nothing is left to write and
// nothing waits for a deadline, or when the session ends; kick starts
// another.
func (sess *session) writeLoop() {
	defer sess.writers.Done()
	clk := sess.srv.cfg.Clock
	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	waiting := false // the state asked to be looked at again at a deadline
	for {
		if sess.ended() {
			sess.box.mu.Lock()
			sess.box.writing = false
			sess.box.mu.Unlock()
			return
		}
		sess.mu.Lock()
		sess.box.mu.Lock()
		look := sess.box.look || waiting
		inbox, resync := sess.box.inbox, sess.box.resync
		sess.box.look, sess.box.inbox, sess.box.resync = false, nil, false
		sess.box.mu.Unlock()
		frames, next, err := sess.st.out(clk.Now(), look, inbox, resync, queueReads{sess})
		if err == nil && len(frames) == 0 && next.IsZero() {
			// Nothing to do: the writer ends, unless something came in
			// since it looked (a reply would have waited for mu).
			sess.box.mu.Lock()
			idle := !sess.box.look
			if idle {
				sess.box.writing = false
			}
			sess.box.mu.Unlock()
			sess.mu.Unlock()
			if idle {
				return
			}
			continue
		}
		sess.mu.Unlock()
		for _, v := range frames {
			if n, ok := v.(wire.Notify); ok {
				sess.srv.metrics.delivered(n.Notifications, clk.Now())
			}
			if err := sess.write(v); err != nil {
				sess.close(websocket.CloseGoingAway, "")
				break
			}
		}
		switch {
		case errors.Is(err, errUnacknowledged):
			sess.log().Info("device unreachable", "err", err)
			sess.srv.metrics.unacked.Inc()
			sess.close(websocket.CloseGoingAway, "no acknowledgement")
			continue
		case err != nil:
			if !sess.ended() {
				// Jittered like every retry-later, so that the devices
				// of a store that failed for all at once (every NATS
				// server restarted) neither wait long nor return together.
				sess.srv.mu.Lock()
				after := sess.srv.retryDelayLocked()
				sess.srv.mu.Unlock()
				sess.log().Error("reading queue failed", "err", err, "retry_after", after)
				sess.close(wire.CloseRetryLater, strconv.Itoa(after))
			}
			continue
		}
		waiting = !next.IsZero()
		if waiting {
			wait := next.Sub(clk.Now())
			if wait <= 0 {
				continue // the clock passed the deadline while writing
			}
			if timer == nil {
				timer = clk.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			// Until the deadline, a kick, or the end.
			select {
			case <-timer.C():
			case <-sess.kickc:
			case <-sess.quit:
			}
		}
	}
}

func (sess *session) write(v any) error {
	if sess.browser != nil {
		return sess.writeBrowser(v)
	}
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

func newUnacked(reg *prometheus.Registry) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "herald_service_unacknowledged_disconnects_total",
		Help: "Device sessions ended because notifications written to the device stayed unacknowledged past its heartbeat and 30 s: links that died silently.",
	})
	reg.MustRegister(c)
	return c
}

// forget drops a cancelled notification from what the session knows of
// the queue; the caller holds mu.
func (sess *session) forget(channelID, messageID string) {
	sess.st.forget(channelID, messageID)
	sess.box.mu.Lock()
	sess.box.inbox = slices.DeleteFunc(sess.box.inbox, func(q store.Queued) bool { return q.ChannelID == channelID && q.MessageID == messageID })
	sess.box.mu.Unlock()
}

// holdConn counts a newly upgraded connection in the server's wait group,
// so Close waits for its session; a server already closing turns it away
// with 4001 and the delay its devices spread their return over.
func (s *Server) holdConn(conn *websocket.Conn, helloDone func()) bool {
	s.mu.Lock()
	if s.closed {
		after := s.retryDelayLocked()
		s.mu.Unlock() // not held over the close frame's write
		closeConn(conn, wire.CloseRetryLater, strconv.Itoa(after))
		helloDone()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	return true
}
