// Package natsstore keeps the notification service's store on NATS
// JetStream, so that any number of heraldsvc nodes share one replicated
// store: devices and channels in key-value buckets, and every device's
// queue as one subject of one stream.
//
// Only cmd/heraldsvc imports it: the herald binary, which embeds a
// single-node service on SQLite, does not carry the NATS client.
//
// # Layout
//
//   - Bucket <prefix>_devices: d.<device> holds the device (JSON);
//     s.<hash of address>.<device> indexes devices by the address they
//     enrolled from.
//   - Bucket <prefix>_channels: c.<channel> holds the channel (JSON);
//     t.<hash of token> and a.<device>.<hash of app> name it by URI token
//     and by app. A token from a URI is only ever hashed, never used as a
//     key, and a channel found by token is checked to still have it.
//   - Stream <PREFIX>_QUEUE, subjects <prefix>.q.<device>: a notification
//     is a message whose stream sequence is its number (increasing per
//     device, not contiguous), its body the data, the rest headers.
//     MaxMsgsPerSubject (the depth and one, a replacement's place) with
//     DiscardNewPerSubject bounds each queue, and plain enqueues stop at
//     the depth on each node's upper bound of the queue (bound.go); an
//     ack purges the subject up to its number; a tile merge or Topic
//     replacement publishes its update (merged or, with nothing to merge
//     into, alone) only if the subject's last sequence is still the one
//     it read (Nats-Expected-Last-Subject-Sequence, 0 for none), else
//     reads again and starts over, then deletes the older entry.
//
// Every node follows the whole stream with an ordered consumer, which
// feeds the commit hook in stream order; Enqueue returns once the
// publish is acknowledged (replicated to a quorum) and this node's
// consumer has passed it, or, when this node's copy of presence says
// another node holds the device's session, once the publish is
// acknowledged: the hook feeds only this node's sessions (see the
// amendment in store's package comment).
//
// # Starting
//
// Start returns a store at once and sets it up in the background,
// retrying until NATS answers (start.go), so that nodes and NATS servers
// may start in any order; Ready says what it waits for, and the service
// answers 503 until it is nil. Open is Start and Wait, for callers that
// need a ready store.
package natsstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/server/store"
)

// Options configure a Store.
type Options struct {
	// URLs are the NATS servers, comma-separated (nats://h1:4222,...).
	URLs string
	// NATS are further options for the connection: credentials, nkeys,
	// TLS, as nats.go offers them.
	NATS []nats.Option
	// Replicas is how many servers keep each bucket and the stream: 3 in
	// a cluster of three, so that losing one loses nothing (default 1).
	Replicas int
	// QueueDepth bounds every device's queue in the stream itself; it must
	// be at least the service's queue depth (default 500).
	QueueDepth int
	// Prefix names the buckets, the stream and its subjects (default
	// "herald"), so that several services may share a NATS cluster.
	Prefix string
	// AckDelay is the longest an AckLater waits before it is applied
	// (default 100 ms).
	AckDelay time.Duration
	// Timeout bounds each request to NATS that has no deadline of its own
	// (default 5 s).
	Timeout time.Duration
	Logger  *slog.Logger
	// Now is the clock message expiry is read against (default
	// time.Now): the service passes its own.
	Now func() time.Time

	// MaxOutcomes bounds the outcomes remembered for one channel per UTC
	// day (default store.MaxOutcomesPerChannel).
	MaxOutcomes int
	// Clock times the waits between attempts to set the store up
	// (default the system clock).
	Clock clock.Clock
	// PingInterval is how often the connection pings its NATS server
	// (default 1 s); unanswered MaxPingsOut times running, the connection
	// is stale and dropped, so a node cut off from NATS by a network that
	// drops its packets, rather than refusing them, knows it within
	// (MaxPingsOut+1) intervals instead of nats.go's 2 minutes × 2.
	PingInterval time.Duration
}

// MaxPingsOut is how many pings may go unanswered before the connection
// is dropped as stale: a server answers a ping within milliseconds, so
// three in a row unanswered is a cut, not a busy machine.
const MaxPingsOut = 3

// Store is a store.Store on NATS JetStream.
type Store struct {
	nc *nats.Conn
	js jetstream.JetStream
	// legacy is nats.go's older JetStream API, for the gets only the
	// stream's leader answers (leader.go).
	legacy   nats.JetStreamContext
	devices  jetstream.KeyValue
	channels jetstream.KeyValue
	queue    jetstream.Stream
	subject  string // <prefix>.q.
	depth    int
	timeout  time.Duration
	log      *slog.Logger
	nowFunc  func() time.Time

	hook atomic.Pointer[func(store.Queued)]
	// onCommit is told of every publish (ReportCommits).
	onCommit atomic.Pointer[func(int, time.Duration, error)]
	cons     jetstream.ConsumeContext
	// passed is the highest stream sequence the consumer has handed to
	// the hook; moved is closed and replaced whenever it moves.
	pmu    sync.Mutex
	passed uint64
	moved  chan struct{}
	// passWaits counts the enqueues that waited for the consumer.
	passWaits atomic.Int64

	// lazy holds AckLater's and TouchLater's until Run applies them.
	lazy     *store.Lazy
	ackDelay time.Duration
	// running is set by Run; ran is closed when it has returned.
	running atomic.Bool
	ran     chan struct{}

	// merging makes this node's tile merges into one device's queue
	// take turns; checking its plain enqueues checked against the depth.
	merging  turns
	checking turns
	// bounds holds an upper bound of each device's queue length
	// (bound.go).
	bounds *bounds
	// pause is the wait before a merge, a checked enqueue or a requeue
	// tries again after a conflict (conflictPause; a test's own, to see
	// what is queued meanwhile).
	pause func(ctx context.Context, try int) error

	presence *presence
	cache    *channelCache
	// devCache is the devices bucket's d.* keys as this node last heard.
	devCache *watched[deviceRec]
	// own is this node's recent writes of the index keys counts list
	// (listed.go).
	own ownKeys
	// lastSeq reads the stream's last number for every hello at once.
	lastSeq  fresh[uint64]
	quota    jetstream.KeyValue
	outcomes jetstream.KeyValue
	// maxOutcomes is Options.MaxOutcomes.
	maxOutcomes int
	// outCount counts outcomes remembered per channel on the UTC day
	// outDay, under outMu.
	outMu    sync.Mutex
	outDay   int64
	outCount map[string]int

	// leases are the daily quota counts this node took ahead from the
	// shared counter and has not handed out yet (quota.go).
	leases leases
	// named notes the named notifications queued for the devices this
	// node serves, so that acks need not read (named.go).
	namedSeen namedSeqs
	// ackReads counts the reads acknowledgements made of the queue.
	ackReads atomic.Uint64

	// Setting up (start.go): life ends with Close and bounds every
	// attempt; ready is set once every step has succeeded, and settled
	// closed then or when the set-up gave up (failed says why).
	clk      clock.Clock
	life     context.Context
	endLife  context.CancelFunc
	ready    atomic.Bool
	settled  chan struct{}
	failed   error
	waitMu   sync.Mutex
	awaiting string // what the set-up waits for, under waitMu
	lastErr  error  // why its last attempt failed, under waitMu
	// refused is a permissions violation NATS reported while setting up.
	refused atomic.Pointer[error]

	// The connection's losses and reconnections, for /metrics.
	disconnects atomic.Uint64
	reconnects  atomic.Uint64
	// lastTransient is when a call last retried a transient error (Unix
	// ns), for FailingOver.
	lastTransient atomic.Int64

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    atomic.Bool
}

var (
	_ store.Store          = (*Store)(nil)
	_ store.Runner         = (*Store)(nil)
	_ store.CommitReporter = (*Store)(nil)
	_ store.Presence       = (*Store)(nil)
	_ store.Quota          = (*Store)(nil)
	_ store.Failovers      = (*Store)(nil)
)

func (opts Options) withDefaults() (Options, error) {
	if opts.Replicas <= 0 {
		opts.Replicas = 1
	}
	if opts.QueueDepth <= 0 {
		opts.QueueDepth = 500
	}
	if opts.Prefix == "" {
		opts.Prefix = "herald"
	}
	if !validPrefix.MatchString(opts.Prefix) {
		return opts, fmt.Errorf("natsstore: prefix %q: letters, digits, - and _ only", opts.Prefix)
	}
	if opts.AckDelay <= 0 {
		opts.AckDelay = 100 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = time.Second
	}
	if opts.MaxOutcomes <= 0 {
		opts.MaxOutcomes = store.MaxOutcomesPerChannel
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	return opts, nil
}

func newStore(opts Options) *Store {
	s := &Store{subject: opts.Prefix + ".q.", depth: opts.QueueDepth, timeout: opts.Timeout, log: opts.Logger,
		moved: make(chan struct{}), lazy: store.NewLazy(), ackDelay: opts.AckDelay, ran: make(chan struct{}),
		stop: make(chan struct{}), nowFunc: opts.Now, maxOutcomes: opts.MaxOutcomes, clk: opts.Clock,
		presence: &presence{node: newID()[:16], live: map[string]time.Time{}}, bounds: newBounds(),
		settled: make(chan struct{}), awaiting: "NATS", pause: conflictPause}
	s.life, s.endLife = context.WithCancel(context.Background())
	s.lastSeq.read = s.streamLast
	return s
}

var validPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func (s *Store) queueConfig(name string, opts Options) jetstream.StreamConfig {
	return QueueStreamConfig(name, s.subject, opts.Replicas, opts.QueueDepth)
}

// QueueStreamConfig is the queue stream's configuration: its name, the
// prefix of its subjects (a device's is the prefix and the device's
// token), its replicas and the queue depth. The load tool's JetStream
// floor makes its stream with it.
func QueueStreamConfig(name, subjectPrefix string, replicas, depth int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:     name,
		Subjects: []string{subjectPrefix + "*"},
		Storage:  jetstream.FileStorage, Replicas: replicas,
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true,
		// One above the depth: the place a replacement in a full queue
		// publishes into before it deletes what it replaced; plain
		// enqueues stop at the depth (bound.go).
		MaxMsgsPerSubject: int64(depth) + 1,
		// A Web Push message carries its TTL (Nats-TTL), so JetStream
		// deletes it when it expires.
		AllowMsgTTL: true,
		// Reads go to the leader, which has every acknowledged publish: a
		// replica answering a direct get may lag behind the commits the
		// hook has told of.
		AllowDirect: false,
	}
}

// The follower's pulls and their heartbeats. NATS places the ordered
// consumer on any replica of the stream, and when that server dies the
// consumer is gone with it: nats.go notices only when two heartbeats are
// missed, then makes it again. With its default for ordered consumers (a
// heartbeat every 5 s) that was 10 s and more in which this node's
// sessions were told of no commit, and a device's queue filled while
// senders were answered Received (e2e.TestClusterStreamLeaderLost, one
// run in three). A heartbeat a second costs each node one small message
// a second from NATS.
const (
	followExpiry    = 5 * time.Second
	followHeartbeat = time.Second
)

// follow starts the ordered consumer that feeds the commit hook. The hook
// may be set after it starts; until then commits are only counted.
func (s *Store) follow(ctx context.Context) error {
	cons, err := s.js.OrderedConsumer(ctx, s.queue.CachedInfo().Config.Name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.subject + "*"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	cc, err := cons.Consume(s.consumed, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		// The stream's leader lost: commits wait for the consumer to
		// follow the new one, which is a failover's slowness too.
		s.failingOver()
		s.log.Warn("natsstore: following the queue stream", "err", err)
	}), jetstream.PullExpiry(followExpiry), jetstream.PullHeartbeat(followHeartbeat))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	s.cons = cc
	return nil
}

// Close stops Run and following the stream, applies the acks waiting and
// closes the connection.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.endLife()
		close(s.stop)
		// Run applies the acks and last-seen times waiting as it stops;
		// without it they are applied here, if the store ever got ready.
		if s.running.Load() {
			<-s.ran
		} else if acks, touches := s.lazy.Take(); (acks != nil || touches != nil) && s.ready.Load() {
			s.flush(acks, touches)
		}
		// The set-up, the watches and the beat; after them nothing writes
		// the fields below.
		s.wg.Wait()
		if s.cons != nil {
			s.cons.Stop()
		}
		if s.nc == nil {
			return
		}
		s.nc.Drain()
		// Drain returns at once; Close after it would drop what is left.
		for s.nc.IsDraining() {
			time.Sleep(10 * time.Millisecond)
		}
		s.nc.Close()
	})
	return nil
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx = context.WithValue(ctx, failoverKey{}, &s.lastTransient)
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.timeout)
}

// failoverKey carries the store's lastTransient to retry, through the
// context its calls make (ctx).
type failoverKey struct{}

// failingOver notes a failover met now.
func (s *Store) failingOver() { s.lastTransient.Store(time.Now().UnixNano()) }

// FailingOver is store.Failovers: whether a call retried a transient
// error (a leader lost, no responders, a reconnect) within the last d.
func (s *Store) FailingOver(d time.Duration) bool {
	last := s.lastTransient.Load()
	return last != 0 && time.Now().Add(-d).UnixNano() <= last
}

// token makes a device or channel id a key or subject token: ids the
// service makes (base64url) as they are, anything else hashed behind a
// '=' that base64url never has.
func token(id string) string {
	if plainID.MatchString(id) {
		return id
	}
	return "=" + hash(id)
}

var plainID = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16])
}

// unavailable marks errors of NATS itself (no quorum, timeouts, a lost
// connection), as opposed to answers about the data.
func unavailable(what string, err error) error {
	if errors.Is(err, store.ErrClosed) {
		return err
	}
	return fmt.Errorf("natsstore: %s: %w: %w", what, store.ErrUnavailable, err)
}

// attemptWait bounds one request when retrying: a stream or bucket in
// the middle of a failover has no leader and does not answer at all.
const attemptWait = time.Second

// transient reports errors of NATS being out of reach for now (a failover,
// a reconnect), as opposed to answers about the data.
func transient(err error) bool {
	if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrConnectionReconnecting) {
		return true
	}
	// A full queue is a 503 too (a store failure, to the stream).
	var ae *jetstream.APIError
	if !errors.As(err, &ae) {
		return false
	}
	// A publish sent again under its message id while the first is still
	// being replicated (a leader waiting for a quorum): asked again, the
	// stream answers with the first one's number once it is stored, or
	// stores this one if it was not. Not a refusal: failing on it
	// answered senders 503 within a second for notifications stored
	// moments later.
	return ae.Code == 503 && !isFull(err) || ae.ErrorCode == jsErrDuplicateInProcess
}

// jsErrDuplicateInProcess is nats-server's JSStreamDuplicateMessageConflict:
// "duplicate message id is in process".
const jsErrDuplicateInProcess jetstream.ErrorCode = 10158

// retry runs op until it succeeds, fails for a reason other than a
// transient one, or ctx ends. Only for reads and for writes that are safe
// to repeat (a publish carries a message id the stream deduplicates by).
func retry(ctx context.Context, op func(ctx context.Context) error) error {
	backoff := 20 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, attemptWait)
		err := op(actx)
		cancel()
		if err == nil || !transient(err) {
			return err
		}
		if last, ok := ctx.Value(failoverKey{}).(*atomic.Int64); ok {
			last.Store(time.Now().UnixNano())
		}
		if ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return err
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// get reads a key, riding out a failover.
func get(ctx context.Context, kv jetstream.KeyValue, key string) (e jetstream.KeyValueEntry, err error) {
	err = retry(ctx, func(ctx context.Context) error {
		e, err = kv.Get(ctx, key)
		return err
	})
	return e, err
}
