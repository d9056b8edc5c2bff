package natsstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/server/store"
)

// Starting in any order. Nodes start together (at boot, as replicas of a
// deployment), often before their NATS servers have elected a JetStream
// leader, and a request sent before then is never answered. So a store
// is set up in steps, each bounded by Options.Timeout and tried again
// with backoff until it succeeds: connecting, JetStream answering, every
// bucket and the stream created or bound, the stream followed, the
// watched copies filled, the node announced. Each step is idempotent and
// takes effect only when it succeeds, so a step cut short by a timeout
// (its request may still land) is simply tried again; several nodes
// racing to create the same bucket all end up bound to the one that
// exists.

// Backoff between attempts: from minBackoff, doubling to maxBackoff, each
// wait drawn from its upper half so that nodes started together do not
// retry in step.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// dialTimeout bounds connecting to one NATS server.
	dialTimeout = 2 * time.Second
	// setUpWait bounds one attempt of a step (or Options.Timeout, if
	// shorter). A request racing another node's creating the same
	// bucket may go unanswered, and a request sent before JetStream has
	// a leader always does: waiting longer for it only delays the next
	// attempt, which finds what the lost one created.
	setUpWait = 2 * time.Second
)

// step is one part of setting the store up. what names what the store
// waits for while the step fails, as Ready tells anyone who asks: never
// an address or a credential.
type step struct {
	what string
	run  func(ctx context.Context) error
}

// Start checks opts and returns at once a store that sets itself up in
// the background, retrying until it is usable, it meets an error that
// retrying cannot mend (NATS refused the credentials), or Close. Until it
// is ready every call fails with store.ErrUnavailable and
// store.ErrNotReady; Ready says what it waits for and Wait waits for it.
func Start(opts Options) (*Store, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := newStore(opts)
	s.wg.Add(1)
	go s.setUpLoop(opts)
	return s, nil
}

// Open is Start, then Wait: it returns a ready store, or the error that
// ended the wait (ctx's, with what the store was waiting for).
func Open(ctx context.Context, opts Options) (*Store, error) {
	s, err := Start(opts)
	if err != nil {
		return nil, err
	}
	if err := s.Wait(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Wait returns nil once the store is ready; the error that stopped it
// setting itself up (store.ErrClosed after Close); or, when ctx ends
// first, ctx's error with what it was waiting for.
func (s *Store) Wait(ctx context.Context) error {
	select {
	case <-s.settled:
		return s.failed
	case <-ctx.Done():
		what, last := s.awaited()
		if last != nil {
			return fmt.Errorf("natsstore: waiting for %s (last: %v): %w", what, last, ctx.Err())
		}
		return fmt.Errorf("natsstore: waiting for %s: %w", what, ctx.Err())
	}
}

// Ready returns nil when the store can be used: it is set up and
// connected to NATS. Otherwise the error wraps store.ErrNotReady and
// names what the store waits for.
func (s *Store) Ready() error {
	if s.closed.Load() {
		return fmt.Errorf("natsstore: closed: %w", store.ErrNotReady)
	}
	if !s.ready.Load() {
		select {
		case <-s.settled:
			return fmt.Errorf("natsstore: gave up setting up (see the log): %w", store.ErrNotReady)
		default:
		}
		what, _ := s.awaited()
		return fmt.Errorf("natsstore: waiting for %s: %w", what, store.ErrNotReady)
	}
	if !s.nc.IsConnected() {
		return fmt.Errorf("natsstore: waiting for NATS (reconnecting): %w", store.ErrNotReady)
	}
	return nil
}

// check is every call's first: it refuses once closed, and until ready.
func (s *Store) check() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if !s.ready.Load() {
		what, _ := s.awaited()
		return fmt.Errorf("natsstore: waiting for %s: %w: %w", what, store.ErrUnavailable, store.ErrNotReady)
	}
	return nil
}

func (s *Store) awaited() (what string, last error) {
	s.waitMu.Lock()
	defer s.waitMu.Unlock()
	return s.awaiting, s.lastErr
}

// settle ends the wait, ready (err nil) or not.
func (s *Store) settle(err error) {
	s.failed = err
	close(s.settled)
}

func (s *Store) setUpLoop(opts Options) {
	defer s.wg.Done()
	began := s.clk.Now()
	backoff := minBackoff
	logged := ""
	for _, st := range s.steps(opts) {
		s.waitMu.Lock()
		s.awaiting, s.lastErr = st.what, nil
		s.waitMu.Unlock()
		for {
			ctx, cancel := context.WithTimeout(s.life, min(s.timeout, setUpWait))
			err := st.run(ctx)
			cancel()
			if err == nil {
				break
			}
			if s.life.Err() != nil {
				s.settle(store.ErrClosed)
				return
			}
			// A subject the user may not use makes requests time out;
			// the error handler heard why, and no retry mends it.
			if v := s.refused.Swap(nil); v != nil {
				err = *v
			}
			if permanent(err) {
				err = fmt.Errorf("natsstore: %s: %w", st.what, err)
				s.log.Error("natsstore: giving up", "err", err)
				s.settle(err)
				return
			}
			s.waitMu.Lock()
			s.lastErr = err
			s.waitMu.Unlock()
			// Once per thing waited for: a node waiting a minute for its
			// servers would otherwise fill its log.
			if logged != st.what {
				s.log.Warn("natsstore: waiting for the store", "for", st.what, "err", err)
				logged = st.what
			} else {
				s.log.Debug("natsstore: still waiting for the store", "for", st.what, "err", err)
			}
			t := s.clk.NewTimer(backoff/2 + rand.N(backoff/2))
			select {
			case <-t.C():
			case <-s.stop:
				t.Stop()
				s.settle(store.ErrClosed)
				return
			}
			backoff = min(2*backoff, maxBackoff)
		}
	}
	s.ready.Store(true)
	s.settle(nil)
	s.log.Info("natsstore: store ready", "waited", s.clk.Now().Sub(began).Round(time.Millisecond))
}

// permanent reports errors that retrying cannot mend: credentials NATS
// refuses, subjects it does not allow them, or files of them that cannot
// be read.
func permanent(err error) bool {
	for _, p := range []error{nats.ErrAuthorization, nats.ErrPermissionViolation, nats.ErrAuthExpired, nats.ErrAuthRevoked, nats.ErrAccountAuthExpired,
		nats.ErrNkeysNotSupported, fs.ErrNotExist, fs.ErrPermission} {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}

// ctxDialer dials NATS servers for as long as the store lives, so that
// Close ends a connection attempt at once instead of after its timeout.
type ctxDialer struct{ ctx context.Context }

func (d ctxDialer) Dial(network, address string) (net.Conn, error) {
	return (&net.Dialer{Timeout: dialTimeout}).DialContext(d.ctx, network, address)
}

func (s *Store) connect(opts Options) error {
	nopts := append([]nats.Option{nats.Name("heraldsvc"), nats.MaxReconnects(-1), nats.SetCustomDialer(ctxDialer{s.life}),
		nats.PingInterval(opts.PingInterval), nats.MaxPingsOutstanding(MaxPingsOut),
		// The consumer's restarts after a reconnect may have missed
		// nothing, but sessions read their queues again to be sure.
		nats.ReconnectHandler(func(nc *nats.Conn) {
			s.reconnects.Add(1)
			s.failingOver()
			s.log.Info("natsstore: reconnected to NATS")
			s.namedSeen.missed()
			s.bounds.missed()
			s.tell(store.Resync)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if !s.closed.Load() {
				s.disconnects.Add(1)
				s.failingOver()
				s.log.Warn("natsstore: lost the connection to NATS; reconnecting", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			// A permissions violation is a NATS account that does not
			// allow what the store needs: its requests time out, and
			// only this says why.
			if errors.Is(err, nats.ErrPermissionViolation) {
				s.log.Error("natsstore: NATS refused a subject to this node's user", "err", err)
				if !s.ready.Load() {
					s.refused.Store(&err)
				}
				return
			}
			s.log.Warn("natsstore: NATS reported an error", "err", err)
		}),
	}, opts.NATS...)
	nc, err := nats.Connect(opts.URLs, nopts...)
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return err
	}
	legacy, err := nc.JetStream()
	if err != nil {
		nc.Close()
		return err
	}
	s.nc, s.js, s.legacy = nc, js, legacy
	return nil
}

// steps are what setting the store up takes, in order.
func (s *Store) steps(opts Options) []step {
	config := func(name string, storage jetstream.StorageType, ttl time.Duration) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: opts.Prefix + "_" + name, History: 1, Storage: storage, Replicas: opts.Replicas, TTL: ttl}
	}
	p := s.presence
	p.nodesConfig = config("nodes", jetstream.MemoryStorage, nodeTTL)
	kv := func(name string, storage jetstream.StorageType, ttl time.Duration, dst *jetstream.KeyValue) step {
		cfg := config(name, storage, ttl)
		return step{"JetStream bucket " + cfg.Bucket, func(ctx context.Context) error {
			b, err := ensure(func() (jetstream.KeyValue, error) { return s.js.CreateOrUpdateKeyValue(ctx, cfg) })
			if err != nil {
				return err
			}
			*dst = leaderGets{KeyValue: b, js: s.legacy}
			return nil
		}}
	}
	queue := strings.ToUpper(opts.Prefix) + "_QUEUE"
	return []step{
		{"NATS", func(context.Context) error { return s.connect(opts) }},
		// Before JetStream has a meta leader its requests go unanswered;
		// this names that wait apart from a bucket's.
		{"JetStream", func(ctx context.Context) error {
			_, err := s.js.AccountInfo(ctx)
			return err
		}},
		kv("devices", jetstream.FileStorage, 0, &s.devices),
		kv("channels", jetstream.FileStorage, 0, &s.channels),
		{"JetStream stream " + queue, func(ctx context.Context) (err error) {
			s.queue, err = ensure(func() (jetstream.Stream, error) { return s.js.CreateOrUpdateStream(ctx, s.queueConfig(queue, opts)) })
			if err != nil {
				return err
			}
			return nil
		}},
		{"JetStream consumer of " + queue, s.follow},
		{"the queues' lengths", s.countQueues},
		{"the channels' copy", s.watchChannels},
		{"the devices' copy", func(ctx context.Context) (err error) {
			s.devCache, err = watch(ctx, s, s.devices, "d.*", decodeDevice, watchOpts[deviceRec]{gone: s.deviceGone})
			return err
		}},
		kv("quota", jetstream.FileStorage, quotaKeep, &s.quota),
		kv("outcomes", jetstream.FileStorage, store.OutcomeRetention, &s.outcomes),
		kv("presence", jetstream.FileStorage, 0, &p.held),
		kv("nodes", jetstream.MemoryStorage, nodeTTL, &p.nodes),
		{"the presence copy", s.watchPresence},
		{"the node's announcement", s.announce},
	}
}

// ensure creates or binds a bucket or stream. Two nodes creating the
// same one at once may both find it missing and both create it: the
// second is told the name is in use, and binds it on the next try.
func ensure[T any](create func() (T, error)) (v T, err error) {
	for range 3 {
		v, err = create()
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return v, err
		}
	}
	return v, err
}
