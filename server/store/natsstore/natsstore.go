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
//     MaxMsgsPerSubject with DiscardNewPerSubject bounds each queue; an
//     ack purges the subject up to its number; a tile merge publishes the
//     merged update only if the subject's last sequence is still the one
//     it read (Nats-Expected-Last-Subject-Sequence), then deletes the
//     older entry.
//
// Every node follows the whole stream with an ordered consumer, which
// feeds the commit hook in stream order; Enqueue returns once the
// publish is acknowledged (replicated to a quorum) and this node's
// consumer has passed it.
package natsstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

	// MaxOutcomes bounds the outcomes remembered for one channel per UTC
	// day (default store.MaxOutcomesPerChannel).
	MaxOutcomes int
}

// Store is a store.Store on NATS JetStream.
type Store struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	devices  jetstream.KeyValue
	channels jetstream.KeyValue
	queue    jetstream.Stream
	subject  string // <prefix>.q.
	depth    int
	timeout  time.Duration
	log      *slog.Logger

	// known holds devices seen to exist (DeleteDevice forgets them), so
	// enqueueing need not look the device up every time.
	known sync.Map

	hook atomic.Pointer[func(store.Queued)]
	cons jetstream.ConsumeContext
	// passed is the highest stream sequence the consumer has handed to
	// the hook; moved is closed and replaced whenever it moves.
	pmu    sync.Mutex
	passed uint64
	moved  chan struct{}

	ackMu    sync.Mutex
	lazy     map[string]uint64
	ackKick  chan struct{}
	ackDelay time.Duration

	presence *presence
	quota    jetstream.KeyValue
	outcomes jetstream.KeyValue
	// maxOutcomes is Options.MaxOutcomes.
	maxOutcomes int

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closed    atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open connects to NATS and creates (or reuses) the buckets and stream.
func Open(ctx context.Context, opts Options) (*Store, error) {
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
		return nil, fmt.Errorf("natsstore: prefix %q: letters, digits, - and _ only", opts.Prefix)
	}
	if opts.AckDelay <= 0 {
		opts.AckDelay = 100 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.MaxOutcomes <= 0 {
		opts.MaxOutcomes = store.MaxOutcomesPerChannel
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{subject: opts.Prefix + ".q.", depth: opts.QueueDepth, timeout: opts.Timeout, log: opts.Logger,
		moved: make(chan struct{}), lazy: map[string]uint64{}, ackKick: make(chan struct{}, 1), ackDelay: opts.AckDelay,
		stop: make(chan struct{})}
	// The hook may be set after the consumer starts; until then commits
	// are only counted.
	nopts := append([]nats.Option{nats.Name("heraldsvc"), nats.MaxReconnects(-1),
		// The consumer's restarts after a reconnect may have missed
		// nothing, but sessions read their queues again to be sure.
		nats.ReconnectHandler(func(*nats.Conn) { s.tell(store.Resync) }),
	}, opts.NATS...)
	nc, err := nats.Connect(opts.URLs, nopts...)
	if err != nil {
		return nil, fmt.Errorf("natsstore: connect %s: %w", opts.URLs, err)
	}
	s.nc = nc
	if err := s.setUp(ctx, opts); err != nil {
		nc.Close()
		return nil, err
	}
	if err := s.setUpQuota(ctx, opts); err != nil {
		s.cons.Stop()
		nc.Close()
		return nil, err
	}
	if err := s.setUpOutcomes(ctx, opts); err != nil {
		s.cons.Stop()
		nc.Close()
		return nil, err
	}
	if err := s.setUpPresence(ctx, opts); err != nil {
		s.cons.Stop()
		nc.Close()
		return nil, err
	}
	s.wg.Add(1)
	go s.flusher()
	return s, nil
}

var validPrefix = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func (s *Store) setUp(ctx context.Context, opts Options) error {
	js, err := jetstream.New(s.nc)
	if err != nil {
		return fmt.Errorf("natsstore: %w", err)
	}
	s.js = js
	kv := func(name string) (jetstream.KeyValue, error) {
		b, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: opts.Prefix + "_" + name, History: 1,
			Storage: jetstream.FileStorage, Replicas: opts.Replicas})
		if err != nil {
			return nil, fmt.Errorf("natsstore: bucket %s: %w", name, err)
		}
		return b, nil
	}
	if s.devices, err = kv("devices"); err != nil {
		return err
	}
	if s.channels, err = kv("channels"); err != nil {
		return err
	}
	s.queue, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     strings.ToUpper(opts.Prefix) + "_QUEUE",
		Subjects: []string{s.subject + "*"},
		Storage:  jetstream.FileStorage, Replicas: opts.Replicas,
		Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true,
		MaxMsgsPerSubject: int64(opts.QueueDepth),
		// Reads go to the leader, which has every acknowledged publish: a
		// replica answering a direct get may lag behind the commits the
		// hook has told of.
		AllowDirect: false,
	})
	if err != nil {
		return fmt.Errorf("natsstore: stream: %w", err)
	}
	cons, err := js.OrderedConsumer(ctx, s.queue.CachedInfo().Config.Name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{s.subject + "*"}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return fmt.Errorf("natsstore: consumer: %w", err)
	}
	s.cons, err = cons.Consume(s.consumed, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		s.log.Warn("natsstore: following the queue stream", "err", err)
	}))
	if err != nil {
		return fmt.Errorf("natsstore: consume: %w", err)
	}
	return nil
}

// Close stops following the stream, applies the acks waiting and closes
// the connection.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.stop)
		s.wg.Wait()
		s.cons.Stop()
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
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.timeout)
}

func (s *Store) check() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
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
	return errors.As(err, &ae) && ae.Code == 503 && !isFull(err)
}

// retry runs op until it succeeds, fails for a reason other than a
// transient one, or ctx ends. Only for reads and for writes that are safe
// to repeat (a publish carries a message id the stream deduplicates by).
func retry(ctx context.Context, op func(ctx context.Context) error) error {
	backoff := 20 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, attemptWait)
		err := op(actx)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil {
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

// Devices.

type deviceRec struct {
	ID         string `json:"id,omitempty"`
	SecretHash []byte `json:"h"`
	Source     string `json:"s"`
	Created    int64  `json:"c"`
	Seen       int64  `json:"l"`
	Power      string `json:"p"`
	Acked      uint64 `json:"a,omitempty"`
	Retired    int64  `json:"r,omitempty"`
}

func decodeDevice(b []byte) (deviceRec, error) {
	var r deviceRec
	err := json.Unmarshal(b, &r)
	return r, err
}

func (r deviceRec) device(id string) store.Device {
	d := store.Device{ID: id, SecretHash: r.SecretHash, Source: r.Source, CreatedAt: time.UnixMilli(r.Created),
		LastSeen: time.UnixMilli(r.Seen), Power: r.Power, AckedSeq: r.Acked}
	if r.Retired != 0 {
		d.RetiredAt = time.UnixMilli(r.Retired)
	}
	return d
}

func deviceKey(id string) string { return "d." + token(id) }

// CreateDevice enrols a device.
func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	power := d.Power
	if power == "" {
		power = "normal"
	}
	b, _ := json.Marshal(deviceRec{ID: d.ID, SecretHash: d.SecretHash, Source: d.Source, Created: d.CreatedAt.UnixMilli(), Seen: d.LastSeen.UnixMilli(), Power: power})
	if _, err := s.devices.Create(ctx, deviceKey(d.ID), b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("natsstore: device %s: %w", d.ID, store.ErrExists)
		}
		return unavailable("create device", err)
	}
	s.known.Store(d.ID, struct{}{})
	if _, err := s.devices.Put(ctx, "s."+hash(d.Source)+"."+token(d.ID), nil); err != nil {
		return unavailable("index device", err)
	}
	return nil
}

func (s *Store) getDevice(ctx context.Context, id string) (deviceRec, uint64, error) {
	e, err := get(ctx, s.devices, deviceKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return deviceRec{}, 0, fmt.Errorf("natsstore: device %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return deviceRec{}, 0, unavailable("device", err)
	}
	var r deviceRec
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return deviceRec{}, 0, fmt.Errorf("natsstore: device %s: %w", id, err)
	}
	return r, e.Revision(), nil
}

// Device looks a device up by id.
func (s *Store) Device(ctx context.Context, id string) (store.Device, error) {
	if err := s.check(); err != nil {
		return store.Device{}, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, _, err := s.getDevice(ctx, id)
	if err != nil {
		return store.Device{}, err
	}
	s.known.Store(id, struct{}{})
	d := r.device(id)
	highest, err := s.highestGiven(ctx, id, r.Acked)
	if err != nil {
		return store.Device{}, err
	}
	d.NextSeq = highest + 1
	return d, nil
}

// updateDevice changes a device with compare-and-set, retrying when
// another node changed it meanwhile. change returns false for no change.
func (s *Store) updateDevice(ctx context.Context, id string, change func(*deviceRec) bool) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	for {
		r, rev, err := s.getDevice(ctx, id)
		if err != nil {
			return err
		}
		if !change(&r) {
			return nil
		}
		b, _ := json.Marshal(r)
		_, err = s.devices.Update(ctx, deviceKey(id), b, rev)
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return unavailable("update device", err)
		}
		return nil
	}
}

// CountDevicesFromSource counts devices enrolled from one address.
func (s *Store) CountDevicesFromSource(ctx context.Context, source string) (int, error) {
	return s.countKeys(ctx, s.devices, "s."+hash(source)+".*")
}

func (s *Store) countKeys(ctx context.Context, kv jetstream.KeyValue, filter string) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	l, err := kv.ListKeysFiltered(ctx, filter)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("count", err)
	}
	defer l.Stop()
	n := 0
	for range l.Keys() {
		n++
	}
	return n, nil
}

// TouchDevice records when the device was last connected.
func (s *Store) TouchDevice(ctx context.Context, id string, seen time.Time) error {
	return s.updateDevice(ctx, id, func(r *deviceRec) bool {
		r.Seen = seen.UnixMilli()
		return true
	})
}

// SetPower records the device's power level.
func (s *Store) SetPower(ctx context.Context, id, power string) error {
	return s.updateDevice(ctx, id, func(r *deviceRec) bool {
		r.Power = power
		return true
	})
}

// Channels.

type channelRec struct {
	ID          string   `json:"id"`
	DeviceID    string   `json:"d"`
	App         string   `json:"a"`
	Name        string   `json:"n"`
	Token       string   `json:"t"`
	ServiceName string   `json:"s,omitempty"`
	Toast       bool     `json:"toast,omitempty"`
	Tile        bool     `json:"tile,omitempty"`
	Domains     []string `json:"dom,omitempty"`
	Pinned      []string `json:"pin,omitempty"`
	Created     int64    `json:"c"`
}

func recOf(c store.Channel) channelRec {
	return channelRec{ID: c.ID, DeviceID: c.DeviceID, App: c.App, Name: c.Name, Token: c.Token, ServiceName: c.ServiceName,
		Toast: c.Toast, Tile: c.Tile, Domains: c.Domains, Pinned: c.Pinned, Created: c.CreatedAt.UnixMilli()}
}

func (r channelRec) channel() store.Channel {
	nonNil := func(v []string) []string {
		if v == nil {
			return []string{}
		}
		return v
	}
	return store.Channel{ID: r.ID, DeviceID: r.DeviceID, App: r.App, Name: r.Name, Token: r.Token, ServiceName: r.ServiceName,
		Toast: r.Toast, Tile: r.Tile, Domains: nonNil(r.Domains), Pinned: nonNil(r.Pinned), CreatedAt: time.UnixMilli(r.Created)}
}

func channelKey(id string) string            { return "c." + token(id) }
func tokenKey(tok string) string             { return "t." + hash(tok) }
func appKey(deviceID, app string) string     { return "a." + token(deviceID) + "." + hash(app) }
func appFilter(deviceID string) string       { return "a." + token(deviceID) + ".*" }
func notFound(what string) error             { return fmt.Errorf("natsstore: %s: %w", what, store.ErrNotFound) }
func (s *Store) subjectOf(dev string) string { return s.subject + token(dev) }

func (s *Store) getChannel(ctx context.Context, id string) (channelRec, uint64, error) {
	e, err := get(ctx, s.channels, channelKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return channelRec{}, 0, notFound("channel")
	}
	if err != nil {
		return channelRec{}, 0, unavailable("channel", err)
	}
	var r channelRec
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return channelRec{}, 0, fmt.Errorf("natsstore: channel %s: %w", id, err)
	}
	return r, e.Revision(), nil
}

// lookup follows an index key to the channel it names.
func (s *Store) lookup(ctx context.Context, key string) (channelRec, error) {
	if err := s.check(); err != nil {
		return channelRec{}, err
	}
	e, err := get(ctx, s.channels, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return channelRec{}, notFound("channel")
	}
	if err != nil {
		return channelRec{}, unavailable("channel", err)
	}
	r, _, err := s.getChannel(ctx, string(e.Value()))
	return r, err
}

// ChannelByToken finds the channel a URI token names.
func (s *Store) ChannelByToken(ctx context.Context, tok string) (store.Channel, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.lookup(ctx, tokenKey(tok))
	if err != nil {
		return store.Channel{}, err
	}
	// An index entry left by a rotation or deletion that did not finish.
	if r.Token != tok {
		return store.Channel{}, notFound("channel")
	}
	return r.channel(), nil
}

// Channel finds a channel by id.
func (s *Store) Channel(ctx context.Context, id string) (store.Channel, error) {
	if err := s.check(); err != nil {
		return store.Channel{}, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, _, err := s.getChannel(ctx, id)
	if err != nil {
		return store.Channel{}, err
	}
	return r.channel(), nil
}

// ChannelByApp finds the device's channel for app.
func (s *Store) ChannelByApp(ctx context.Context, deviceID, app string) (store.Channel, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.lookup(ctx, appKey(deviceID, app))
	if err != nil {
		return store.Channel{}, err
	}
	if r.DeviceID != deviceID || r.App != app {
		return store.Channel{}, notFound("channel")
	}
	return r.channel(), nil
}

// CountChannels counts the device's channels.
func (s *Store) CountChannels(ctx context.Context, deviceID string) (int, error) {
	return s.countKeys(ctx, s.channels, appFilter(deviceID))
}

// CreateChannel stores a new channel: its app index first (which makes a
// second channel for the app fail), then the channel, then its token,
// which is what makes it reachable by senders.
func (s *Store) CreateChannel(ctx context.Context, c store.Channel) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	ak := appKey(c.DeviceID, c.App)
	if _, err := s.channels.Create(ctx, ak, []byte(c.ID)); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return unavailable("create channel", err)
		}
		// Taken, unless by a channel whose creation never finished.
		e, gerr := s.channels.Get(ctx, ak)
		if gerr != nil {
			return unavailable("create channel", gerr)
		}
		if _, _, err := s.getChannel(ctx, string(e.Value())); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("natsstore: channel %s/%s: %w", c.DeviceID, c.App, store.ErrExists)
		}
		if _, err := s.channels.Update(ctx, ak, []byte(c.ID), e.Revision()); err != nil {
			return fmt.Errorf("natsstore: channel %s/%s: %w", c.DeviceID, c.App, store.ErrExists)
		}
	}
	b, _ := json.Marshal(recOf(c))
	if _, err := s.channels.Create(ctx, channelKey(c.ID), b); err != nil {
		s.channels.Delete(ctx, ak)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("natsstore: channel %s: %w", c.ID, store.ErrExists)
		}
		return unavailable("create channel", err)
	}
	if _, err := s.channels.Put(ctx, tokenKey(c.Token), []byte(c.ID)); err != nil {
		return unavailable("create channel", err)
	}
	return nil
}

// updateChannel changes a channel with compare-and-set.
func (s *Store) updateChannel(ctx context.Context, id string, change func(*channelRec)) (old channelRec, err error) {
	for {
		r, rev, err := s.getChannel(ctx, id)
		if err != nil {
			return channelRec{}, err
		}
		old = r
		change(&r)
		b, _ := json.Marshal(r)
		_, err = s.channels.Update(ctx, channelKey(id), b, rev)
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return channelRec{}, unavailable("update channel", err)
		}
		return old, nil
	}
}

// SetChannelToken rotates a channel's URI token: the new token is indexed
// before the channel takes it, and the old one dropped after, so the
// channel is reachable throughout by one of them.
func (s *Store) SetChannelToken(ctx context.Context, id, tok string) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if _, _, err := s.getChannel(ctx, id); err != nil {
		return err
	}
	if _, err := s.channels.Put(ctx, tokenKey(tok), []byte(id)); err != nil {
		return unavailable("set channel token", err)
	}
	old, err := s.updateChannel(ctx, id, func(r *channelRec) { r.Token = tok })
	if err != nil {
		return err
	}
	if old.Token != tok {
		if err := s.channels.Delete(ctx, tokenKey(old.Token)); err != nil {
			return unavailable("set channel token", err)
		}
	}
	return nil
}

// SetBindings replaces a channel's shell bindings.
func (s *Store) SetBindings(ctx context.Context, id string, toast, tile bool, domains, pinned []string) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.updateChannel(ctx, id, func(r *channelRec) {
		r.Toast, r.Tile, r.Domains, r.Pinned = toast, tile, domains, pinned
	})
	return err
}

// DeleteChannel removes a channel, its token first so its URI answers 404
// at once. Its queued notifications stay until acknowledged.
func (s *Store) DeleteChannel(ctx context.Context, id string) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, _, err := s.getChannel(ctx, id)
	if err != nil {
		return err
	}
	for _, k := range []string{tokenKey(r.Token), appKey(r.DeviceID, r.App), channelKey(id)} {
		if err := s.channels.Delete(ctx, k); err != nil {
			return unavailable("delete channel", err)
		}
	}
	return nil
}

// The queue.

// Headers of a queued notification.
const (
	hDevice   = "Herald-Device"
	hChannel  = "Herald-Channel"
	hKind     = "Herald-Kind"
	hClass    = "Herald-Class"
	hMessage  = "Herald-Message-Id"
	hTile     = "Herald-Tile-Key"
	hAccepted = "Herald-Accepted"
	hDue      = "Herald-Due"
	hMerged   = "Herald-Merged"
	hUrgency  = "Herald-Urgency"
)

func (s *Store) message(q store.Queued) *nats.Msg {
	m := nats.NewMsg(s.subjectOf(q.DeviceID))
	m.Data = q.Body
	h := m.Header
	h.Set(hDevice, q.DeviceID)
	h.Set(hChannel, q.ChannelID)
	h.Set(hKind, q.Kind)
	h.Set(hClass, strconv.Itoa(q.Class))
	if q.MessageID != "" {
		h.Set(hMessage, q.MessageID)
	}
	if q.TileKey != "" {
		// Header values end at a line break; a tile key holds a NUL.
		h.Set(hTile, hex.EncodeToString([]byte(q.TileKey)))
	}
	h.Set(hAccepted, strconv.FormatInt(q.AcceptedAt.UnixMilli(), 10))
	h.Set(hDue, strconv.FormatInt(q.DueAt.UnixMilli(), 10))
	if q.Merged != 0 {
		h.Set(hMerged, strconv.FormatUint(q.Merged, 10))
	}
	if q.Urgency != 0 {
		h.Set(hUrgency, strconv.Itoa(q.Urgency))
	}
	return m
}

func decode(seq uint64, h nats.Header, data []byte) (store.Queued, error) {
	q := store.Queued{Seq: seq, DeviceID: h.Get(hDevice), ChannelID: h.Get(hChannel), Kind: h.Get(hKind), MessageID: h.Get(hMessage), Body: data}
	var err error
	num := func(name string) int64 {
		n, perr := strconv.ParseInt(h.Get(name), 10, 64)
		if perr != nil && err == nil {
			err = fmt.Errorf("natsstore: message %d: header %s: %w", seq, name, perr)
		}
		return n
	}
	q.Class = int(num(hClass))
	q.AcceptedAt, q.DueAt = time.UnixMilli(num(hAccepted)), time.UnixMilli(num(hDue))
	if v := h.Get(hMerged); v != "" {
		q.Merged, _ = strconv.ParseUint(v, 10, 64)
	}
	if h.Get(hUrgency) != "" {
		q.Urgency = int(num(hUrgency))
	}
	if v := h.Get(hTile); v != "" {
		k, herr := hex.DecodeString(v)
		if herr != nil && err == nil {
			err = fmt.Errorf("natsstore: message %d: tile key: %w", seq, herr)
		}
		q.TileKey = string(k)
	}
	if q.DeviceID == "" && err == nil {
		err = fmt.Errorf("natsstore: message %d: no device", seq)
	}
	return q, err
}

// isFull reports a publish refused by MaxMsgsPerSubject.
func isFull(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && strings.Contains(ae.Description, "maximum messages per subject")
}

func isWrongLast(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

func (s *Store) knownDevice(ctx context.Context, id string) error {
	if _, ok := s.known.Load(id); ok {
		return nil
	}
	if _, _, err := s.getDevice(ctx, id); err != nil {
		return err
	}
	s.known.Store(id, struct{}{})
	return nil
}

// maxMergeTries bounds how often a tile merge starts again after another
// enqueue for the device slipped in; past it the update queues unmerged.
const maxMergeTries = 8

// Enqueue publishes q to its device's subject and returns once the stream
// has acknowledged it (on a quorum of its replicas) and this node's
// consumer has told the hook of it.
func (s *Store) Enqueue(ctx context.Context, q store.Queued, opts store.EnqueueOptions) (store.Queued, error) {
	if err := s.check(); err != nil {
		return store.Queued{}, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := s.knownDevice(ctx, q.DeviceID); err != nil {
		return store.Queued{}, err
	}
	if opts.MaxDepth > 0 && opts.MaxDepth < s.depth {
		// A bound below the stream's own is checked before publishing,
		// which concurrent enqueues may overshoot by a few.
		pending, err := s.Pending(ctx, q.DeviceID, 0)
		if err != nil {
			return store.Queued{}, err
		}
		if len(pending) >= opts.MaxDepth && !(q.TileKey != "" && opts.Merge != nil && hasTile(pending, q.TileKey)) {
			return store.Queued{}, store.ErrQueueFull
		}
	}
	var (
		seq uint64
		err error
	)
	if q.TileKey != "" && opts.Merge != nil {
		q, err = s.mergeEnqueue(ctx, q, opts)
		seq = q.Seq
	} else {
		seq, err = s.publish(ctx, q)
	}
	if err != nil {
		return store.Queued{}, err
	}
	q.Seq = seq
	s.waitPassed(ctx, seq)
	return q, nil
}

func hasTile(qs []store.Queued, key string) bool {
	for _, q := range qs {
		if q.TileKey == key {
			return true
		}
	}
	return false
}

func (s *Store) publish(ctx context.Context, q store.Queued, opts ...jetstream.PublishOpt) (uint64, error) {
	// A publish whose answer was lost in a failover is sent again under
	// the same id, and the stream takes it once.
	opts = append(opts, jetstream.WithMsgID(newID()))
	msg := s.message(q)
	var ack *jetstream.PubAck
	err := retry(ctx, func(ctx context.Context) error {
		var err error
		ack, err = s.js.PublishMsg(ctx, msg, opts...)
		return err
	})
	switch {
	case err == nil:
		return ack.Sequence, nil
	case isFull(err):
		return 0, store.ErrQueueFull
	case isWrongLast(err):
		return 0, err
	default:
		return 0, unavailable("enqueue", err)
	}
}

// mergeEnqueue merges a tile update into the newest queued one for the
// same tile. The merged update is published only if the device's subject
// has not changed since it was read, then the older one is deleted; a
// crash between the two leaves both, which the device applies in order to
// the same end.
func (s *Store) mergeEnqueue(ctx context.Context, q store.Queued, opts store.EnqueueOptions) (store.Queued, error) {
	for range maxMergeTries {
		queued, err := s.Pending(ctx, q.DeviceID, 0)
		if err != nil {
			return store.Queued{}, err
		}
		var older *store.Queued
		for i := len(queued) - 1; i >= 0; i-- {
			if queued[i].TileKey == q.TileKey {
				older = &queued[i]
				break
			}
		}
		if older == nil {
			break
		}
		body, ok := opts.Merge(*older)
		if !ok {
			break
		}
		m := q
		m.Body, m.Merged = body, older.Seq
		if older.DueAt.Before(m.DueAt) {
			m.DueAt = older.DueAt
		}
		last := queued[len(queued)-1].Seq
		seq, err := s.publish(ctx, m, jetstream.WithExpectLastSequencePerSubject(last))
		if errors.Is(err, store.ErrQueueFull) {
			seq, err = s.replaceAtDepth(ctx, m, *older, queued)
		}
		if isWrongLast(err) {
			continue
		}
		if err != nil {
			return store.Queued{}, err
		}
		if err := s.queue.DeleteMsg(ctx, older.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			s.log.Warn("natsstore: deleting a merged tile update", "device", q.DeviceID, "seq", older.Seq, "err", err)
		}
		m.Seq = seq
		return m, nil
	}
	seq, err := s.publish(ctx, q)
	q.Seq = seq
	return q, err
}

// replaceAtDepth makes room for a merged update in a full queue by
// deleting the one it replaces first. If another enqueue takes the room
// meanwhile, the older update is put back under a new number (the merge
// is then tried again, with it).
func (s *Store) replaceAtDepth(ctx context.Context, m, older store.Queued, queued []store.Queued) (uint64, error) {
	if err := s.queue.DeleteMsg(ctx, older.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, unavailable("merge", err)
	}
	var last uint64
	for _, e := range queued {
		if e.Seq != older.Seq {
			last = e.Seq
		}
	}
	seq, err := s.publish(ctx, m, jetstream.WithExpectLastSequencePerSubject(last))
	if err == nil {
		return seq, nil
	}
	older.Merged = 0
	if _, perr := s.publish(ctx, older); perr != nil {
		s.log.Error("natsstore: a tile update taken out for a merge could not be put back", "device", older.DeviceID,
			"seq", older.Seq, "err", perr)
	}
	return 0, err
}

// Pending reads the device's subject above after from the stream's leader.
func (s *Store) Pending(ctx context.Context, deviceID string, after uint64) ([]store.Queued, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	subj := s.subjectOf(deviceID)
	var out []store.Queued
	for next := after + 1; next != 0; {
		var m *jetstream.RawStreamMsg
		err := retry(ctx, func(ctx context.Context) error {
			var err error
			m, err = s.queue.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subj))
			return err
		})
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, unavailable("pending", err)
		}
		q, err := decode(m.Sequence, m.Header, m.Data)
		if err != nil {
			return nil, err
		}
		out = append(out, q)
		next = m.Sequence + 1
	}
	return out, nil
}

// Ack purges the device's subject up to seq and records seq on the device.
func (s *Store) Ack(ctx context.Context, deviceID string, seq uint64) error {
	if err := s.check(); err != nil {
		return err
	}
	if seq > store.MaxSeq {
		return fmt.Errorf("natsstore: ack %d: %w", seq, store.ErrSeqRange)
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := s.purge(ctx, deviceID, seq); err != nil {
		return err
	}
	err := s.updateDevice(ctx, deviceID, func(r *deviceRec) bool {
		if seq <= r.Acked {
			return false
		}
		r.Acked = seq
		return true
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func (s *Store) purge(ctx context.Context, deviceID string, seq uint64) error {
	if err := s.deliveredUpTo(ctx, deviceID, seq); err != nil {
		return err
	}
	opts := []jetstream.StreamPurgeOpt{jetstream.WithPurgeSubject(s.subjectOf(deviceID))}
	if seq < 1<<63 {
		// Purge keeps what is at or above the sequence given.
		opts = append(opts, jetstream.WithPurgeSequence(seq+1))
	}
	if err := retry(ctx, func(ctx context.Context) error { return s.queue.Purge(ctx, opts...) }); err != nil {
		return unavailable("ack", err)
	}
	return nil
}

// AckLater is Ack applied within AckDelay by the flusher.
func (s *Store) AckLater(deviceID string, seq uint64) {
	if seq > store.MaxSeq {
		return
	}
	s.ackMu.Lock()
	first := len(s.lazy) == 0
	if seq > s.lazy[deviceID] {
		s.lazy[deviceID] = seq
	}
	s.ackMu.Unlock()
	if first {
		select {
		case s.ackKick <- struct{}{}:
		default:
		}
	}
}

func (s *Store) flusher() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ackKick:
		case <-s.stop:
			s.flush()
			return
		}
		select {
		case <-time.After(s.ackDelay):
		case <-s.stop:
		}
		s.flush()
	}
}

func (s *Store) flush() {
	s.ackMu.Lock()
	acks := s.lazy
	s.lazy = map[string]uint64{}
	s.ackMu.Unlock()
	for dev, seq := range acks {
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		// Through the unexported path: Ack refuses once closing.
		err := s.purge(ctx, dev, seq)
		if err == nil {
			err = s.updateDeviceUnchecked(ctx, dev, seq)
		}
		cancel()
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("natsstore: applying an ack", "device", dev, "seq", seq, "err", err)
		}
	}
}

func (s *Store) updateDeviceUnchecked(ctx context.Context, id string, seq uint64) error {
	for {
		r, rev, err := s.getDevice(ctx, id)
		if err != nil || seq <= r.Acked {
			return err
		}
		r.Acked = seq
		b, _ := json.Marshal(r)
		_, err = s.devices.Update(ctx, deviceKey(id), b, rev)
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		return err
	}
}

// OnCommitted sets the hook the consumer tells of every commit.
func (s *Store) OnCommitted(f func(store.Queued)) { s.hook.Store(&f) }

func (s *Store) tell(q store.Queued) {
	if f := s.hook.Load(); f != nil {
		(*f)(q)
	}
}

// consumed is the ordered consumer's handler: one goroutine, stream order.
func (s *Store) consumed(m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		s.log.Warn("natsstore: a queue message without metadata", "err", err)
		return
	}
	q, err := decode(md.Sequence.Stream, m.Headers(), m.Data())
	if err != nil {
		s.log.Warn("natsstore: an undecodable queue message", "err", err)
	} else {
		s.tell(q)
	}
	s.pmu.Lock()
	if md.Sequence.Stream > s.passed {
		s.passed = md.Sequence.Stream
		close(s.moved)
		s.moved = make(chan struct{})
	}
	s.pmu.Unlock()
}

// passWait bounds how long Enqueue waits for the consumer: the
// notification is durable already, and a message purged by an ack before
// the consumer reached it is never handed over.
const passWait = 2 * time.Second

func (s *Store) waitPassed(ctx context.Context, seq uint64) {
	timeout := time.NewTimer(passWait)
	defer timeout.Stop()
	for {
		s.pmu.Lock()
		passed, moved := s.passed, s.moved
		s.pmu.Unlock()
		if passed >= seq {
			return
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return
		case <-timeout.C:
			return
		}
	}
}

// QueueLength counts the messages in the stream.
func (s *Store) QueueLength(ctx context.Context) (int64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	info, err := s.queue.Info(ctx)
	if err != nil {
		return 0, unavailable("queue length", err)
	}
	return int64(info.State.Msgs), nil
}
