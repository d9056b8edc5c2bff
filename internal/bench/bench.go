// Package bench drives many lightweight devices against a notification
// service and measures what it takes: memory and CPU of the service, and
// the latency and losses of notifications sent through its MPNS endpoint.
// Each device is a channel.Link with an in-memory handler, so the figures
// are the service's and the protocol's, not a device database's.
package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/wire"
)

// Config describes one run.
type Config struct {
	// Devices is how many devices connect, each with one channel.
	Devices int
	// Rate is notifications per second over Duration; 0 sends none (an
	// idle run, for memory).
	Rate     float64
	Duration time.Duration
	// Hold keeps the devices connected and idle this long before sending,
	// so that memory settles.
	Hold time.Duration
	// Service is the base URL of a running service; "" starts one in this
	// process on a database in DataDir.
	Service string
	// ServicePID is the running service's process, for RSS and CPU.
	ServicePID int
	// ServiceBinary, when Service is "", is a heraldsvc executable to
	// start as its own process on a database in DataDir; "" runs the
	// service inside this process instead.
	ServiceBinary string
	DataDir       string
	// Sources is how many loopback source addresses (127.0.0.2 onwards)
	// the devices spread over, so N can exceed one address's ports.
	Sources int
	// Senders is how many HTTP requests may be in flight at once.
	Senders int
	// Connectors is how many devices connect at once.
	Connectors int
	// PostTo, if set, are base URLs of other nodes of a cluster: each
	// notification is posted to one of them (round-robin) at its channel
	// URI's path, so that sender and device are on different nodes.
	PostTo []string
	// Reconnect, once the devices are connected, drops every link and
	// connects them all again: hellos of known devices (a device read,
	// its proof, its queue), as when a node takes another's devices,
	// rather than the enrolments of the first connection.
	Reconnect bool
	// Failover are other nodes of the Service's cluster, after it in
	// every device's list of service URLs. With Kill, once connected the
	// ServicePID process is killed (SIGKILL) and the time until every
	// device is back on one of them is measured; notifications then go
	// to them.
	Failover []string
	Kill     bool
	// Browsers makes the devices browsers speaking Firefox's push protocol
	// (docs/browsers.md), each with one subscription, and the
	// notifications Web Push messages to their endpoints.
	Browsers bool
	// Drain is how long to wait after the last POST for deliveries.
	Drain  time.Duration
	Logger *slog.Logger
	// Floor first runs the same measurement against a floor: a service
	// of the same shape that keeps nothing (floor.go), in this process,
	// so that each figure has its ratio to what the machine allows.
	Floor bool
	// DurableFloor, after the floor (it implies Floor), runs the same
	// against the durable floor: the floor plus, per notification, a
	// SQLite insert committed before it is sent and answered and a
	// delete when its ack comes, one committer grouping them into
	// transactions (durable.go), so that the cost of durability alone
	// has a figure.
	DurableFloor bool
	// CPUPIDs are every process of the service (a cluster's NATS
	// servers and nodes, or one node): their CPU time from the start of
	// sending until Settle after the last delivery, summed, is divided by
	// the notifications delivered (Result.CPUPerDeliveredUs).
	CPUPIDs []int
	// Settle is how long after the last delivery the CPUPIDs are sampled
	// again, so that what a delivery sets off after it arrives (a lazily
	// applied acknowledgement) is counted too (default 1 s).
	Settle time.Duration

	// drained, if set, is called once the sent notifications are
	// delivered (or Drain is over), the devices still connected.
	drained func(context.Context)
}

// Sample is the service process's resources at one moment.
type Sample struct {
	RSSKiB  int64   `json:"rss_kib"`
	CPUSecs float64 `json:"cpu_seconds"`
}

// Result is what a run measured.
type Result struct {
	Devices   int     `json:"devices"`
	InProcess bool    `json:"in_process"`
	Rate      float64 `json:"rate"`
	DurationS float64 `json:"duration_s"`
	ConnectS  float64 `json:"connect_s"`
	// ReconnectS is how long the Reconnect phase took, from the first
	// hello's dial until every device was welcomed; HellosPerS is
	// Devices over it.
	ReconnectS float64 `json:"reconnect_s,omitempty"`
	HellosPerS float64 `json:"hellos_per_s,omitempty"`
	// HelloCPUUs is the service's CPU time per hello in the Reconnect
	// phase, in microseconds: steadier than the rate on a shared machine.
	HelloCPUUs float64 `json:"hello_cpu_us,omitempty"`
	// FailoverS is how long after the kill every device was up again.
	FailoverS float64 `json:"failover_s,omitempty"`
	// FailoverQuantilesS is when half, 90% and 99% of the devices were
	// back, in seconds after the kill.
	FailoverQuantilesS []float64 `json:"failover_quantiles_s,omitempty"`
	Sent               int64     `json:"sent"`
	Accepted           int64     `json:"accepted"`
	Refused            int64     `json:"refused"`
	Errors             int64     `json:"errors"`
	Delivered          int64     `json:"delivered"`
	Lost               int64     `json:"lost"`
	Duplicated         int64     `json:"duplicated"`
	// AchievedRate is accepted notifications per second of the send phase.
	AchievedRate float64 `json:"achieved_rate"`
	LatencyMs    struct {
		P50 float64 `json:"p50"`
		P90 float64 `json:"p90"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"latency_ms"`
	// Service resources: before devices connect, once they are idle, and
	// after sending; CPUPercent is over the send phase (100 = one core).
	Before      Sample  `json:"before"`
	Idle        Sample  `json:"idle"`
	After       Sample  `json:"after"`
	KiBPerDev   float64 `json:"kib_per_device"`
	CPUPercent  float64 `json:"cpu_percent"`
	ServiceNote string  `json:"service_note,omitempty"`
	// ServiceMetrics are the service's own figures from its /metrics
	// after sending (keys: the Metric* constants).
	ServiceMetrics map[string]float64 `json:"service_metrics,omitempty"`
	// Floor is the same run against the floor (Config.Floor).
	Floor *Result `json:"floor,omitempty"`
	// DurableFloor is the same run against the durable floor
	// (Config.DurableFloor).
	DurableFloor *Result `json:"durable_floor,omitempty"`
	// RowsLeft, for the durable floor, is how many notifications its
	// table still held once the acks had had Drain to come: 0 when every
	// delivered notification was acked and deleted.
	RowsLeft *int64 `json:"rows_left,omitempty"`
	// DurableCommits is the durable floor's transactions: how many,
	// their mean time from BEGIN to COMMIT, and the notifications and
	// acks they took.
	DurableCommits *DurableCommits `json:"durable_commits,omitempty"`
	// CPU is each of Config.CPUPIDs' CPU time over the send phase (from
	// the first POST until Settle after the last delivery), and
	// CPUPerDeliveredUs their sum over the notifications delivered, in
	// microseconds.
	CPU               []ProcCPU `json:"cpu,omitempty"`
	CPUPerDeliveredUs float64   `json:"cpu_per_delivered_us,omitempty"`
	// JetStreamFloor marks a run of RunJetStreamFloor (jsfloor.go): no
	// service and no devices, a stream's subjects instead. Removed is
	// the purges it made, one a message delivered, and LeftInStream the
	// messages still in the stream after them.
	JetStreamFloor bool   `json:"jetstream_floor,omitempty"`
	Removed        int64  `json:"removed,omitempty"`
	LeftInStream   uint64 `json:"left_in_stream,omitempty"`
}

// DurableCommits is what the durable floor's committer did.
type DurableCommits struct {
	Commits int64   `json:"commits"`
	MeanMs  float64 `json:"mean_ms"`
	Inserts int64   `json:"inserts"`
	Acks    int64   `json:"acks"`
}

// ProcCPU is one process's CPU time over the send phase.
type ProcCPU struct {
	PID  int     `json:"pid"`
	Name string  `json:"name"`
	Secs float64 `json:"cpu_seconds"`
}

// collector gathers what devices receive.
type collector struct {
	seen      []atomic.Uint32 // by notification id
	delivered atomic.Int64
	mu        sync.Mutex
	lat       []time.Duration
}

func (c *collector) record(body []byte, now time.Time) {
	// Bodies are "id sentUnixNano"; anything else is not ours.
	i := bytes.IndexByte(body, ' ')
	if i < 0 {
		return
	}
	id, err1 := strconv.Atoi(string(body[:i]))
	sent, err2 := strconv.ParseInt(string(body[i+1:]), 10, 64)
	if err1 != nil || err2 != nil || id < 0 || id >= len(c.seen) {
		return
	}
	c.seen[id].Add(1)
	c.delivered.Add(1)
	c.mu.Lock()
	c.lat = append(c.lat, now.Sub(time.Unix(0, sent)))
	c.mu.Unlock()
}

// device is a channel.Handler keeping its identity and progress in memory.
type device struct {
	col *collector
	mu  sync.Mutex
	id  channel.Identity
	seq uint64
	up  chan struct{}
	one sync.Once
	// back is closed when the link is up again after going down, at
	// backAt.
	back     chan struct{}
	backAt   time.Time
	wentDown bool
	backOnce sync.Once
}

func (d *device) Session(context.Context) (channel.Identity, uint64, string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.id, d.seq, "", nil
}

func (d *device) Enrolled(_ context.Context, id channel.Identity) error {
	d.mu.Lock()
	d.id = id
	d.mu.Unlock()
	return nil
}

func (d *device) Rejected(context.Context) error {
	d.mu.Lock()
	d.id, d.seq = channel.Identity{}, 0
	d.mu.Unlock()
	return nil
}

func (d *device) Apply(_ context.Context, ns []wire.Notification) error {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range ns {
		// The link may hand over again what was applied but not yet
		// acknowledged; like the daemon, skip it by sequence number.
		if n.Seq <= d.seq {
			continue
		}
		d.seq = n.Seq
		d.col.record(n.Body, now)
	}
	return nil
}

// again is a fresh handler for the same device, for a new link.
func (d *device) again() *device {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &device{col: d.col, id: d.id, seq: d.seq, up: make(chan struct{}), back: make(chan struct{})}
}

func (d *device) URIChanged(string, string) {}
func (d *device) Expired(string)            {}
func (d *device) StatusChanged(up bool) {
	d.mu.Lock()
	down := d.wentDown
	if !up {
		d.wentDown = true
	}
	d.mu.Unlock()
	if up {
		d.one.Do(func() { close(d.up) })
		if down {
			d.backOnce.Do(func() {
				d.mu.Lock()
				d.backAt = time.Now()
				d.mu.Unlock()
				close(d.back)
			})
		}
	}
}

// ErrNotLoopback refuses services off this host: the tool is a load
// generator and must not be pointed at anyone else's machine.
var ErrNotLoopback = errors.New("bench: service must be on loopback")

// CheckLoopback accepts only http URLs whose host is a loopback address.
func CheckLoopback(service string) error {
	u, err := url.Parse(service)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("bench: service URL %q must be http://host:port", service)
	}
	if h := u.Hostname(); !loopbackHost(h) {
		return fmt.Errorf("%w: %q", ErrNotLoopback, h)
	}
	return nil
}

func loopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || ip != nil && ip.IsLoopback()
}

// Run performs one run and returns its figures.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Devices <= 0 {
		return nil, errors.New("bench: devices must be positive")
	}
	if cfg.Rate < 0 || cfg.Duration < 0 {
		return nil, errors.New("bench: rate and duration must not be negative")
	}
	if cfg.Sources <= 0 {
		cfg.Sources = 1
	}
	if cfg.Browsers && (cfg.Reconnect || cfg.Kill) {
		return nil, errors.New("bench: browsers are measured connecting and receiving only, not reconnecting or failing over")
	}
	if cfg.Sources > 250 {
		return nil, errors.New("bench: at most 250 source addresses")
	}
	cfg.defaults()
	var fl, dfl *Result
	if cfg.Floor || cfg.DurableFloor {
		if len(cfg.PostTo) > 0 || len(cfg.Failover) > 0 || cfg.Kill {
			return nil, errors.New("bench: the floor is one node: no --post-to, --failover or --kill with it")
		}
		// The floors run in this process: the service's --cpu-pids would
		// measure idle processes beside them.
		floorCfg := cfg
		floorCfg.CPUPIDs = nil
		f, err := startFloor("")
		if err != nil {
			return nil, err
		}
		fl, err = measure(ctx, floorCfg, f.url, os.Getpid(), &Result{Devices: cfg.Devices, Rate: cfg.Rate, InProcess: true,
			ServiceNote: "the floor, in-process: keeps nothing"})
		f.close()
		if err != nil {
			return nil, fmt.Errorf("bench: the floor's run: %w", err)
		}
	}
	if cfg.DurableFloor {
		var err error
		if dfl, err = runDurableFloor(ctx, cfg); err != nil {
			return nil, fmt.Errorf("bench: the durable floor's run: %w", err)
		}
	}
	res, err := run1(ctx, cfg)
	if err != nil {
		return nil, err
	}
	res.Floor, res.DurableFloor = fl, dfl
	return res, nil
}

// runDurableFloor measures the durable floor on a database in a
// directory of its own, removed after, and counts the rows left once the
// last acks have had Drain to come.
func runDurableFloor(ctx context.Context, cfg Config) (*Result, error) {
	cfg.CPUPIDs = nil // in this process, as the floor
	dir, err := os.MkdirTemp("", "heraldbench-durable")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	f, err := startFloor(dir)
	if err != nil {
		return nil, err
	}
	res := &Result{Devices: cfg.Devices, Rate: cfg.Rate, InProcess: true,
		ServiceNote: "the durable floor, in-process: the floor + a SQLite insert per notification committed before it is sent, a delete per ack"}
	var left int64
	var leftErr error
	cfg.drained = func(ctx context.Context) {
		left, leftErr = f.durable.waitEmpty(ctx, cfg.Drain)
		res.RowsLeft = &left
	}
	_, err = measure(ctx, cfg, f.url, os.Getpid(), res)
	f.close()
	if d := f.durable; d.commits > 0 {
		res.DurableCommits = &DurableCommits{Commits: d.commits, Inserts: d.inserts, Acks: d.acks,
			MeanMs: float64(d.committing.Microseconds()) / 1000 / float64(d.commits)}
	}
	if err == nil {
		err = leftErr
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// defaults fills in what cfg leaves at zero.
func (cfg *Config) defaults() {
	if cfg.Senders <= 0 {
		cfg.Senders = 64
	}
	if cfg.Connectors <= 0 {
		cfg.Connectors = 32
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 10 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
}

// run1 is one run against the service cfg says.
func run1(ctx context.Context, cfg Config) (*Result, error) {
	res := &Result{Devices: cfg.Devices, Rate: cfg.Rate}
	pid := cfg.ServicePID
	base := cfg.Service
	if base == "" {
		dir := cfg.DataDir
		if dir == "" {
			d, err := os.MkdirTemp("", "heraldbench")
			if err != nil {
				return nil, fmt.Errorf("bench: %w", err)
			}
			defer os.RemoveAll(d)
			dir = d
		}
		if cfg.ServiceBinary != "" {
			sp, err := spawnService(ctx, cfg.ServiceBinary, dir, os.Stderr)
			if err != nil {
				return nil, err
			}
			defer sp.stop()
			base, pid = sp.url, sp.pid()
			res.ServiceNote = "its own process, started by the tool"
			return measure(ctx, cfg, base, pid, res)
		}
		st, err := sqlitestore.Open(ctx, filepath.Join(dir, "heraldsvc.db"), sqlitestore.Options{GroupCommit: true})
		if err != nil {
			return nil, fmt.Errorf("bench: opening the service store: %w", err)
		}
		svc, err := server.Start(ctx, server.ServeConfig{Listen: "127.0.0.1:0", Store: st,
			Server: server.Config{Logger: cfg.Logger, Limits: Unlimited()}})
		if err != nil {
			return nil, fmt.Errorf("bench: starting the service: %w", err)
		}
		defer svc.Close()
		base = svc.URL()
		pid = os.Getpid()
		res.InProcess = true
		res.ServiceNote = "in-process: RSS and CPU include the devices and senders"
	} else if err := CheckLoopback(base); err != nil {
		return nil, err
	}
	return measure(ctx, cfg, base, pid, res)
}

// measure connects the devices to the service at base, whose process is
// pid, lets them idle, sends, and fills in res.
func measure(ctx context.Context, cfg Config, base string, pid int, res *Result) (*Result, error) {
	res.Before = sample(pid)

	total := 0
	if cfg.Rate > 0 {
		total = int(cfg.Rate * cfg.Duration.Seconds())
	}
	col := &collector{seen: make([]atomic.Uint32, total), lat: make([]time.Duration, 0, total)}

	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	start := time.Now()
	fleet, err := connect(lctx, cfg, base, col, &wg)
	if err != nil {
		return nil, err
	}
	res.ConnectS = time.Since(start).Seconds()
	if cfg.Reconnect {
		if err := fleet.reconnect(lctx, cfg, base, pid, &wg, res); err != nil {
			return nil, err
		}
	}
	if cfg.Kill {
		if err := fleet.failover(ctx, pid, res); err != nil {
			return nil, err
		}
		if len(cfg.PostTo) == 0 {
			cfg.PostTo = cfg.Failover
		}
	}
	uris := fleet.uris
	if cfg.Hold > 0 {
		select {
		case <-time.After(cfg.Hold):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if res.InProcess {
		runtime.GC()
	}
	res.Idle = sample(pid)
	cpuBefore := sampleCPU(cfg.CPUPIDs)
	if res.Idle.RSSKiB > 0 {
		res.KiBPerDev = float64(res.Idle.RSSKiB-res.Before.RSSKiB) / float64(cfg.Devices)
	}
	if total > 0 {
		send(ctx, cfg, uris, total, col, res)
		// Wait for what was accepted to arrive, up to Drain.
		deadline := time.Now().Add(cfg.Drain)
		for col.delivered.Load() < res.Accepted && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if cfg.drained != nil {
			cfg.drained(ctx)
		}
		if res.CPU, err = settledCPU(ctx, cfg, cpuBefore); err != nil {
			return nil, err
		}
	}
	if m, err := ScrapeService(ctx, base); err != nil {
		cfg.Logger.Warn("reading the service's metrics failed", "err", err)
	} else {
		res.ServiceMetrics = m
	}
	res.After = sample(pid)
	if res.DurationS > 0 {
		res.CPUPercent = 100 * (res.After.CPUSecs - res.Idle.CPUSecs) / res.DurationS
	}
	summarise(col, res)
	return res, nil
}

// settledCPU waits cfg.Settle, then returns each of cfg.CPUPIDs' CPU
// time since before; nothing without pids.
func settledCPU(ctx context.Context, cfg Config, before []ProcCPU) ([]ProcCPU, error) {
	if len(cfg.CPUPIDs) == 0 {
		return nil, nil
	}
	select {
	case <-time.After(cfg.Settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return cpuSince(before, sampleCPU(cfg.CPUPIDs)), nil
}

// Unlimited is the service's limits with every quota and rate off, so the
// run measures the service rather than its protections.
func Unlimited() server.Limits {
	return server.Limits{DailyQuota: -1, ChannelRate: -1, SenderRate: -1,
		MaxInFlight: 1 << 16, SlowStore: time.Hour, MaxPendingHellosPerSource: -1, MaxPendingHellos: -1}
}

// fleet is the connected devices: their channel URIs, handlers and links.
type fleet struct {
	uris  []string
	devs  []*device
	links []*running
}

// running is one device's link running on a goroutine of its own.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// connect starts one link per device, Connectors at a time, and opens a
// channel on each.
func connect(ctx context.Context, cfg Config, base string, col *collector, wg *sync.WaitGroup) (*fleet, error) {
	f := &fleet{uris: make([]string, cfg.Devices), devs: make([]*device, cfg.Devices), links: make([]*running, cfg.Devices)}
	err := parallel(ctx, cfg.Devices, cfg.Connectors, func(i int) error {
		if cfg.Browsers {
			var err error
			f.uris[i], f.links[i], err = startBrowser(ctx, cfg, base, i, col, wg)
			return err
		}
		d := &device{col: col, up: make(chan struct{}), back: make(chan struct{})}
		l, r, err := startLink(ctx, cfg, base, i, d, wg)
		if err != nil {
			return err
		}
		f.devs[i], f.links[i] = d, r
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		_, f.uris[i], err = l.Register(rctx, "bench", "main", "", false)
		return err
	})
	return f, err
}

// reconnect stops every link, waits until the service has let go of
// them all, then starts them again, Connectors at a time, each as the
// device it was, and times it until every device is welcomed.
func (f *fleet) reconnect(ctx context.Context, cfg Config, base string, pid int, wg *sync.WaitGroup, res *Result) error {
	for _, r := range f.links {
		r.cancel()
	}
	for _, r := range f.links {
		<-r.done
	}
	// Hellos are what is measured, not the takeover of sessions the
	// service has not yet seen end.
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, err := ScrapeService(ctx, base)
		if err != nil {
			return err
		}
		if m[MetricConnected] == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %v devices still connected a minute after their links stopped", m[MetricConnected])
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	start, cpu := time.Now(), sample(pid)
	err := parallel(ctx, cfg.Devices, cfg.Connectors, func(i int) error {
		d := f.devs[i].again()
		_, r, err := startLink(ctx, cfg, base, i, d, wg)
		if err != nil {
			return err
		}
		f.devs[i], f.links[i] = d, r
		select {
		case <-d.up:
			return nil
		case <-time.After(60 * time.Second):
			return errors.New("not welcomed again within a minute")
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	if err != nil {
		return err
	}
	res.ReconnectS = time.Since(start).Seconds()
	res.HellosPerS = float64(cfg.Devices) / res.ReconnectS
	res.HelloCPUUs = 1e6 * (sample(pid).CPUSecs - cpu.CPUSecs) / float64(cfg.Devices)
	return nil
}

// failover kills the service process and waits until every device is up
// again on another node.
func (f *fleet) failover(ctx context.Context, pid int, res *Result) error {
	if pid <= 0 {
		return errors.New("bench: --kill needs the service's process")
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("bench: killing the service: %w", err)
	}
	killed := time.Now()
	timeout := time.After(5 * time.Minute)
	for i, d := range f.devs {
		select {
		case <-d.back:
		case <-timeout:
			return fmt.Errorf("bench: device %d not back 5 minutes after the kill", i)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	res.FailoverS = time.Since(killed).Seconds()
	// How the fleet came back: the last device alone may wait out a
	// backoff the rest did not.
	took := make([]float64, len(f.devs))
	for i, d := range f.devs {
		d.mu.Lock()
		took[i] = d.backAt.Sub(killed).Seconds()
		d.mu.Unlock()
	}
	slices.Sort(took)
	for _, q := range []float64{0.5, 0.9, 0.99} {
		res.FailoverQuantilesS = append(res.FailoverQuantilesS, took[int(q*float64(len(took)-1))])
	}
	return nil
}

// parallel runs do(0..n-1), workers at a time, and returns the first
// error (the rest are not started).
func parallel(ctx context.Context, n, workers int, do func(int) error) error {
	jobs := make(chan int)
	errc := make(chan error, workers)
	var cw sync.WaitGroup
	for range workers {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for i := range jobs {
				if err := do(i); err != nil {
					errc <- fmt.Errorf("bench: device %d: %w", i, err)
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range n {
		select {
		case jobs <- i:
		case err = <-errc:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(jobs)
	cw.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return err
}

// startLink runs device i's link to base on its own goroutine, from
// source address i%Sources.
func startLink(ctx context.Context, cfg Config, base string, i int, d *device, wg *sync.WaitGroup) (*channel.Link, *running, error) {
	src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%cfg.Sources))}
	dialer := &net.Dialer{LocalAddr: src, Timeout: 20 * time.Second, KeepAlive: -1}
	service := base
	if len(cfg.Failover) > 0 {
		service += "," + strings.Join(cfg.Failover, ",")
	}
	l, err := channel.New(channel.Config{Service: service, Handler: d, Logger: cfg.Logger, Dial: dialer.DialContext,
		Heartbeat: channel.MeteredHeartbeatCeiling})
	if err != nil {
		return nil, nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	r := &running{cancel: cancel, done: make(chan struct{})}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(r.done)
		l.Run(lctx)
	}()
	return l, r, nil
}

// send posts total raw notifications at cfg.Rate, spread round-robin over
// the channels.
func send(ctx context.Context, cfg Config, uris []string, total int, col *collector, res *Result) {
	tr := &http.Transport{MaxIdleConns: cfg.Senders, MaxIdleConnsPerHost: cfg.Senders, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &mpns.Client{HTTP: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
	sendAll(ctx, cfg, total, res, func(id int) outcome {
		body := strconv.Itoa(id) + " " + strconv.FormatInt(time.Now().UnixNano(), 10)
		if cfg.Browsers {
			switch status, err := postWebPush(ctx, client.HTTP, target(cfg.PostTo, uris[id%len(uris)], id), body); {
			case err != nil:
				return failed
			case status == http.StatusCreated:
				return accepted
			default:
				return refused
			}
		}
		switch res, err := client.Send(ctx, target(cfg.PostTo, uris[id%len(uris)], id), mpns.Raw(body), mpns.SendOptions{}); {
		case err != nil:
			return failed
		case res.Status == http.StatusOK:
			return accepted
		default:
			return refused
		}
	})
}

// outcome is what became of one notification sent.
type outcome int

const (
	accepted outcome = iota
	refused
	failed
)

// sendAll has cfg.Senders goroutines send notifications 0 to total-1,
// each with one, paced at cfg.Rate, and counts the outcomes in res.
func sendAll(ctx context.Context, cfg Config, total int, res *Result, one func(id int) outcome) {
	jobs := make(chan int, cfg.Senders)
	var wg sync.WaitGroup
	var counts [failed + 1]atomic.Int64
	for range cfg.Senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range jobs {
				counts[one(id)].Add(1)
			}
		}()
	}
	start := time.Now()
	sent := pace(ctx, cfg.Rate, cfg.Duration, total, jobs)
	close(jobs)
	wg.Wait()
	res.DurationS = time.Since(start).Seconds()
	res.Sent = int64(sent)
	res.Accepted, res.Refused, res.Errors = counts[accepted].Load(), counts[refused].Load(), counts[failed].Load()
	res.AchievedRate = float64(res.Accepted) / res.DurationS
}

// pace feeds ids 0 to total-1 to jobs, rate a second from now, and
// returns how many it fed.
func pace(ctx context.Context, rate float64, duration time.Duration, total int, jobs chan<- int) int {
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	// A rate above what the service takes makes a closed loop: the
	// senders are always busy, and sending ends a second after the
	// duration rather than once Rate × Duration are sent. The second is
	// slack for a loaded machine, so that a rate the service keeps up
	// with is always sent whole.
	over := time.NewTimer(duration + time.Second + duration/10)
	defer over.Stop()
	sent := 0
feed:
	for sent < total {
		select {
		case <-ctx.Done():
			break feed
		case <-over.C:
			break feed
		case <-tick.C:
		}
		due := min(total, int(rate*time.Since(start).Seconds()))
		for ; sent < due; sent++ {
			select {
			case jobs <- sent:
			case <-ctx.Done():
				break feed
			case <-over.C:
				break feed
			}
		}
	}
	tick.Stop()
	return sent
}

// target is the URI to post notification id to: the channel URI, or its
// path on one of the other nodes.
func target(nodes []string, uri string, id int) string {
	if len(nodes) == 0 {
		return uri
	}
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	return strings.TrimRight(nodes[id%len(nodes)], "/") + u.Path
}

// summarise fills in res's deliveries, losses, duplicates, latencies
// and CPU per delivered from what col gathered.
func summarise(col *collector, res *Result) {
	res.Delivered = col.delivered.Load()
	if res.Delivered > 0 && len(res.CPU) > 0 {
		var sum float64
		for _, c := range res.CPU {
			sum += c.Secs
		}
		res.CPUPerDeliveredUs = 1e6 * sum / float64(res.Delivered)
	}
	var unique int64
	for i := range col.seen {
		switch n := col.seen[i].Load(); {
		case n > 1:
			res.Duplicated++
			unique++
		case n == 1:
			unique++
		}
	}
	res.Lost = max(0, res.Accepted-unique)
	col.mu.Lock()
	lat := slices.Clone(col.lat)
	col.mu.Unlock()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e6
	}
	res.LatencyMs.P50, res.LatencyMs.P90, res.LatencyMs.P99 = q(0.50), q(0.90), q(0.99)
	res.LatencyMs.Max = float64(lat[len(lat)-1]) / 1e6
}
