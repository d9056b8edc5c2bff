package channel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/wire"
)

// errDeadLink: a heartbeat went unanswered.
var errDeadLink = errors.New("heartbeat not answered: link is dead")

// conn is one websocket connection. Its read loop, its write loop and the
// heartbeat are all in this file; the write loop owns every write.
type conn struct {
	l  *Link
	ws *websocket.Conn

	ctx    context.Context
	cancel context.CancelFunc

	out      chan any      // frames for the writer
	activity chan struct{} // cap 1: the read side saw traffic
	pong     chan struct{} // cap 1: a pong arrived
}

func newConn(l *Link, ws *websocket.Conn) *conn {
	c := &conn{l: l, ws: ws,
		out: make(chan any, 64), activity: make(chan struct{}, 1), pong: make(chan struct{}, 1)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// serve runs the connection until it fails or ctx ends.
func (c *conn) serve(ctx context.Context) (time.Duration, error) {
	stop := context.AfterFunc(ctx, c.cancel)
	defer stop()
	c.ws.SetPongHandler(func(string) error {
		signal(c.pong)
		return nil
	})

	l := c.l
	l.mu.Lock()
	l.conn = c
	close(l.up)
	l.stats.Connected, l.stats.Since, l.stats.State = true, l.cfg.Clock.Now(), StateConnected
	heartbeat := l.hb.Interval
	l.mu.Unlock()
	l.cfg.Handler.StatusChanged(true)
	l.log.Info("link up", "heartbeat", heartbeat)

	var wg sync.WaitGroup
	wg.Add(1)
	var writeErr error
	go func() {
		defer wg.Done()
		writeErr = c.writeLoop()
	}()
	readErr := c.readLoop()
	c.cancel()
	// Closing the socket unblocks a writer stuck on a dead peer.
	c.ws.Close()
	wg.Wait()

	l.mu.Lock()
	l.conn = nil
	l.up = make(chan struct{})
	l.stats.Connected = false
	l.stats.State = StateConnecting
	for req, ch := range l.waiters {
		close(ch) // requests in flight are retried on the next connection
		delete(l.waiters, req)
	}
	l.mu.Unlock()
	l.cfg.Handler.StatusChanged(false)

	err := readErr
	if writeErr != nil {
		err = writeErr
	}
	return c.retryAfter(err), err
}

// read reads and decodes one frame.
func (c *conn) read() (any, error) {
	typ, data, err := c.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	if typ != websocket.TextMessage {
		return nil, fmt.Errorf("%w: binary frame", wire.ErrBadFrame)
	}
	return wire.DecodeService(data)
}

// retryAfter extracts the service's "retry later" delay from a close.
func (c *conn) retryAfter(err error) time.Duration {
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code == wire.CloseRetryLater {
		if secs, perr := strconv.Atoi(ce.Text); perr == nil && secs > 0 {
			return time.Duration(secs) * time.Second
		}
	}
	return 0
}

func (c *conn) readLoop() error {
	for {
		frame, err := c.read()
		if err != nil {
			if c.ctx.Err() != nil {
				return nil
			}
			return err
		}
		signal(c.activity)
		switch f := frame.(type) {
		case *wire.Notify:
			if len(f.Notifications) == 0 {
				continue
			}
			if err := c.l.cfg.Handler.Apply(c.ctx, f.Notifications); err != nil {
				// Not acknowledged: the service resends after reconnecting.
				return fmt.Errorf("applying notifications: %w", err)
			}
			last := f.Notifications[len(f.Notifications)-1].Seq
			if err := c.send(c.ctx, wire.Ack{Type: wire.TypeAck, Seq: last}); err != nil {
				return nil
			}
			c.l.wake(wakeAck)
		case *wire.Registered:
			c.deliver(f.ReqID, f)
		case *wire.Result:
			c.deliver(f.ReqID, f)
		case *wire.URI:
			c.l.cfg.Handler.URIChanged(f.ChannelID, f.URI)
		case *wire.Expired:
			c.l.cfg.Handler.Expired(f.ChannelID)
		case *wire.Welcome, *wire.Challenge, *wire.Refused:
			return fmt.Errorf("%w: %T after the welcome", wire.ErrBadFrame, f)
		}
	}
}

func (c *conn) deliver(req uint64, v any) {
	c.l.mu.Lock()
	ch := c.l.waiters[req]
	delete(c.l.waiters, req)
	c.l.mu.Unlock()
	if ch != nil {
		ch <- v
	}
}

// send queues a frame for the writer.
func (c *conn) send(ctx context.Context, v any) error {
	select {
	case c.out <- v:
		return nil
	case <-c.ctx.Done():
		return ErrNotConnected
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotConnected, ctx.Err())
	}
}

// writeNow writes a frame directly; only before the writer starts.
func (c *conn) writeNow(v any) error {
	b, err := wire.Encode(v)
	if err != nil {
		return err
	}
	c.ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

// writeLoop writes queued frames and keeps the link alive. The one timer
// is the heartbeat: any traffic either way pushes it back, so an active
// link never pings; after an idle interval it pings, and a ping unanswered
// within the heartbeat timeout means the link is dead. What happened to the
// ping teaches the link about the network's idle timeout.
func (c *conn) writeLoop() error {
	// Closing the socket when the writer ends unblocks the read loop, which
	// would otherwise wait forever on a half-open connection.
	defer c.ws.Close()
	l := c.l
	clk := l.cfg.Clock
	// armed is the idle time the heartbeat timer counts (and so the one
	// its ping tests).
	armed := l.arm()
	idle := clk.NewTimer(armed)
	l.heartbeatDue(clk.Now().Add(armed))
	defer func() {
		idle.Stop()
		l.heartbeatDue(time.Time{})
	}()
	rearm := func() {
		armed = l.arm()
		idle.Reset(armed)
		l.heartbeatDue(clk.Now().Add(armed))
	}
	var waiting clock.Timer // armed while a ping is unanswered
	var waitingC <-chan time.Time
	var probe time.Duration // the idle time the unanswered ping tests
	defer func() {
		if waiting != nil {
			waiting.Stop()
		}
	}()
	for {
		select {
		case <-c.ctx.Done():
			msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
			c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
			return nil
		case v := <-c.out:
			if err := c.writeNow(v); err != nil {
				c.cancel()
				return fmt.Errorf("write: %w", err)
			}
			if waiting == nil {
				rearm()
			}
		case <-c.activity:
			if waiting == nil {
				rearm()
			}
		case <-idle.C():
			probe = armed
			l.mu.Lock()
			l.stats.HeartbeatDue = time.Time{}
			l.stats.Pings++
			l.wakes.add(clk.Now(), wakeHeartbeat)
			l.mu.Unlock()
			// Armed before the ping goes out, so the timeout counts from
			// the ping whatever the scheduler does next.
			waiting = clk.NewTimer(l.cfg.HeartbeatTimeout)
			waitingC = waiting.C()
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeTimeout)); err != nil {
				c.cancel()
				return fmt.Errorf("ping: %w", err)
			}
		case <-c.pong:
			if waiting == nil {
				continue // unsolicited
			}
			waiting.Stop()
			waiting, waitingC = nil, nil
			l.probed(probe, true)
			rearm()
		case <-waitingC:
			waiting, waitingC = nil, nil
			l.probed(probe, false)
			c.cancel()
			return errDeadLink
		}
	}
}
