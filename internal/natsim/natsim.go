// Package natsim is a simulated carrier NAT for tests and demos: a loopback
// TCP proxy that silently drops a flow once it has been idle for a set time.
// A dropped flow is black-holed, as a real NAT does it: no FIN, no RST, both
// sockets stay open, and whatever either side sends is read and discarded.
// Idle time is measured on an injected clock, so a test can let a flow sit
// idle for 30 minutes without waiting.
package natsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/heraldpush/herald/clock"
)

// Stats count what the NAT has seen since it started.
type Stats struct {
	Flows   int // flows accepted
	Dropped int // flows dropped for idleness (or by DropAll)
	// Up and Down are bytes forwarded from the client to the target and
	// back; UpPackets and DownPackets count the reads that carried them.
	Up, Down               int64
	UpPackets, DownPackets int64
	// Discarded counts reads that arrived on a dropped flow, UpDiscarded
	// those of them that came from the client.
	Discarded, UpDiscarded int64
	// Lost counts packets lost to SetLoss (each black-holed its flow).
	Lost int
}

// NAT is a running simulated NAT.
type NAT struct {
	target string
	clk    clock.Clock
	ln     net.Listener

	mu    sync.Mutex
	idle  time.Duration
	loss  float64
	rng   *rand.Rand
	flows map[*flow]struct{}
	stats Stats
	// seen is closed and replaced whenever a read is forwarded or discarded,
	// so a test can wait for a packet to have crossed the NAT.
	seen chan struct{}

	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

type flow struct {
	client, server net.Conn
	last           time.Time // last forwarded byte, either way
	dropped        bool
}

// New listens on 127.0.0.1 and forwards each connection to target, dropping
// flows idle for idle (zero: never).
func New(target string, idle time.Duration, clk clock.Clock) (*NAT, error) {
	if clk == nil {
		clk = clock.Real{}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("natsim: listen: %w", err)
	}
	n := &NAT{target: target, clk: clk, ln: ln, idle: idle, flows: map[*flow]struct{}{}, seen: make(chan struct{}), done: make(chan struct{})}
	n.wg.Add(1)
	go n.accept()
	return n, nil
}

// Addr is the address clients connect to.
func (n *NAT) Addr() string { return n.ln.Addr().String() }

// URL is http://Addr.
func (n *NAT) URL() string { return "http://" + n.Addr() }

// SetIdle changes the idle timeout for every flow.
func (n *NAT) SetIdle(d time.Duration) {
	n.mu.Lock()
	n.idle = d
	n.mu.Unlock()
}

// SetLoss makes the NAT lose, with probability p, each packet from the
// client that ends an idle spell (a heartbeat's ping, not a handshake's or
// an answer's), as a passing radio fade does: the flow is black-holed from
// then on, which the client cannot tell from an idle timeout. The draws
// come from a PCG seeded with seed, so a run is repeatable.
func (n *NAT) SetLoss(p float64, seed uint64) {
	n.mu.Lock()
	n.loss, n.rng = p, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	n.mu.Unlock()
}

// Stats returns a snapshot of the counters.
func (n *NAT) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Seen returns a channel closed at the next read that crosses the NAT.
func (n *NAT) Seen() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.seen
}

// DropAll black-holes every current flow at once, as when the NAT reboots
// or the device moves out of coverage.
func (n *NAT) DropAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for f := range n.flows {
		if !f.dropped {
			f.dropped = true
			n.stats.Dropped++
		}
	}
}

// Close stops accepting, closes every flow's sockets and waits for the
// forwarding goroutines.
func (n *NAT) Close() error {
	err := n.ln.Close()
	n.mu.Lock()
	select {
	case <-n.done:
	default:
		close(n.done)
	}
	for f := range n.flows {
		f.client.Close()
		f.server.Close()
	}
	n.mu.Unlock()
	n.wg.Wait()
	return err
}

func (n *NAT) accept() {
	defer n.wg.Done()
	for {
		c, err := n.ln.Accept()
		if err != nil {
			return
		}
		n.wg.Add(1)
		go n.open(c)
	}
}

func (n *NAT) open(c net.Conn) {
	defer n.wg.Done()
	d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}
	s, err := d.DialContext(context.Background(), "tcp", n.target)
	if err != nil {
		// The target is down: the client sees its connection refused.
		c.Close()
		return
	}
	f := &flow{client: c, server: s, last: n.clk.Now()}
	n.mu.Lock()
	select {
	case <-n.done:
		n.mu.Unlock()
		c.Close()
		s.Close()
		return
	default:
	}
	n.flows[f] = struct{}{}
	n.stats.Flows++
	n.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.pump(f, c, s, true) }()
	go func() { defer wg.Done(); n.pump(f, s, c, false) }()
	wg.Wait()
	c.Close()
	s.Close()
	n.mu.Lock()
	delete(n.flows, f)
	n.mu.Unlock()
}

// pump copies src to dst while the flow lives. An end of stream on a live
// flow is passed on (a FIN goes through a NAT); on a dropped flow it is
// swallowed, and the other side keeps waiting until Close.
func (n *NAT) pump(f *flow, src, dst net.Conn, up bool) {
	buf := make([]byte, 32<<10)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.mu.Lock()
			now := n.clk.Now()
			if !f.dropped && n.idle > 0 && now.Sub(f.last) >= n.idle {
				f.dropped = true
				n.stats.Dropped++
			}
			if !f.dropped && up && n.loss > 0 && now.After(f.last) && n.rng.Float64() < n.loss {
				f.dropped = true
				n.stats.Lost++
			}
			forward := !f.dropped
			if forward {
				f.last = now
				if up {
					n.stats.Up += int64(k)
					n.stats.UpPackets++
				} else {
					n.stats.Down += int64(k)
					n.stats.DownPackets++
				}
			} else {
				n.stats.Discarded++
				if up {
					n.stats.UpDiscarded++
				}
			}
			n.mu.Unlock()
			var werr error
			if forward {
				_, werr = dst.Write(buf[:k])
			}
			// Told only now, so a packet seen has also been passed on.
			n.mu.Lock()
			close(n.seen)
			n.seen = make(chan struct{})
			n.mu.Unlock()
			if werr != nil {
				src.Close()
				return
			}
		}
		if err != nil {
			n.mu.Lock()
			dropped := f.dropped
			n.mu.Unlock()
			if dropped && !errors.Is(err, net.ErrClosed) {
				// Keep the other side open until Close, as a real NAT
				// that forgot the flow would.
				<-n.done
				return
			}
			if errors.Is(err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
					return
				}
			}
			dst.Close()
			return
		}
	}
}
