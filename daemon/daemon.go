// Package daemon is the device daemon, Herald's phone: it owns the device
// database and the one link to the notification service, keeps track of
// which apps are running, dispatches each notification by type, and serves
// the local API that apps and the CLI use.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/defaults"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/storage"
)

// Errors a caller acts on.
var (
	ErrQuotaExceeded = errors.New("daemon: channel quota exceeded")
	ErrChannelExists = errors.New("daemon: app already has a channel with another name")
	ErrNotOpened     = errors.New("daemon: app has no channel")
	ErrOpenFailed    = errors.New("daemon: channel open failed")
	ErrBadRequest    = errors.New("daemon: bad request")
)

// ToastDisplay shows a toast the way the device's shell does.
type ToastDisplay interface {
	Show(ctx context.Context, t platform.Toast) error
}

// Config configures a Daemon.
type Config struct {
	// Service is the notification service's base URL.
	Service string
	// DataDir holds the device database (herald.db), unless DB is given.
	DataDir string
	// DB, when set, is a database shared by several phones (the emulator);
	// the daemon keeps its state under Phone and does not close DB.
	DB    *SharedDB
	Phone string
	// Socket is the local API's Unix socket path; "" serves no socket (the
	// caller may still use Handler).
	Socket string
	// SocketGroup, when set, is the group (name or id) whose members may
	// use the local API besides the daemon's own user: the socket is then
	// mode 0660 and group-owned. Empty means owner only (0600).
	SocketGroup string
	// PeerCred tells the user at the other end of a socket connection
	// (default SocketPeerUID); tests put other users there.
	PeerCred PeerCred
	Display  ToastDisplay
	// PowerSource reports the OS's power level when no level has been set
	// with SetPower; nil means normal.
	PowerSource func() (platform.PowerLevel, error)
	Clock       clock.Clock
	Logger      *slog.Logger
	// Link tunes the connection (heartbeat, backoff, dialer); Service,
	// Handler, Clock and Logger are filled in.
	Link channel.Config
	// Supply reports whether the device is on external power and on
	// Wi-Fi, for its minimum urgency (urgency.go); nil means both.
	Supply func() (onPower, onWiFi bool)
	// RunningGrace is how long an app whose event stream broke still
	// counts as running, so that a daemon restart or a brief hiccup does
	// not make it miss raw notifications.
	RunningGrace time.Duration
	// OpenTimeout bounds how long opening a channel waits for the link.
	OpenTimeout time.Duration
	// MaxChannels is MPNS's 30 channels per device.
	MaxChannels int
	// Handlers are the apps' background handlers (from the configuration
	// file): commands run for raw notifications while the app is not
	// running.
	Handlers map[string]platform.Handler
	// HandlerConcurrency bounds how many handlers run at once
	// (default DefaultHandlerConcurrency).
	HandlerConcurrency int
	// HandlerBacklog bounds how many jobs one app may have queued (default
	// DefaultHandlerBacklog); raw notifications beyond it are dropped.
	HandlerBacklog int
	// Network names the network the device is on, for remembering its
	// learned heartbeat; nil uses channel.CurrentNetwork.
	Network func(ctx context.Context) (string, error)
	// HeartbeatCeiling returns the heartbeat ceiling on the network the
	// device is on now (lower on a metered one); 0 or nil keeps
	// Link.HeartbeatCeiling.
	HeartbeatCeiling func(ctx context.Context) time.Duration
	// NoNetworkWatch turns off reconnecting when the OS reports a network
	// coming up. Phones sharing a DB (the emulator) never watch: they are
	// simulated, and the host's network is not theirs.
	NoNetworkWatch bool
	// Effective is the configuration the daemon was started with, keyed
	// as in the configuration file; Status reports it.
	Effective map[string]any
	// History bounds the device database's toasts and app events.
	History History
	// UnifiedPushBus is where the UnifiedPush distributor serves apps:
	// UnifiedPushSession, UnifiedPushSystem, a D-Bus address, or ""/
	// UnifiedPushOff for none.
	UnifiedPushBus string
	// UnifiedPushPeerUID tells the Unix user of a connection on the
	// distributor's bus, by its unique name (default: ask the bus,
	// GetConnectionUnixUser); tests put other users there.
	UnifiedPushPeerUID func(bus *dbus.Conn, uniqueName string) (uint32, error)
	// OnChange, when set, is called after a change to the phone's state
	// commits (see observe.go); it must not block.
	OnChange func(Change)
}

// Defaults with their reasons.
const (
	// Long enough for the daemon to restart under a service manager and
	// for the app to reconnect; short enough that a crashed app stops
	// collecting raw notifications it will never read.
	DefaultRunningGrace = 30 * time.Second
	// HttpNotificationChannel.Open gave up after about this long.
	DefaultOpenTimeout = 15 * time.Second
	DefaultMaxChannels = 30
)

// Daemon is a running device daemon.
type Daemon struct {
	cfg   Config
	log   *slog.Logger
	db    *storage.DeviceDB // owned (closed by Close) only when Config.DB was nil
	store *storage.DeviceStore
	link  *channel.Link
	hub   *hub
	bg    *background
	obs   observer
	up    *unifiedPush // nil while the distributor is off

	uiMu  sync.Mutex
	uiURL string // the start screen's address with its key (SetStartScreen)

	// opMu serialises channel operations (open, close, bind, resync), so
	// the local view and the service's never interleave half-done changes.
	opMu sync.Mutex

	wg    sync.WaitGroup // goroutines Run starts
	runWG sync.WaitGroup // Run itself, so Close can wait for it

	streamMu sync.Mutex
	closing  bool
	streams  sync.WaitGroup // app event streams being served
	ctx      context.Context
	cancel   context.CancelFunc
	ln       net.Listener
}

// SharedDB is a device database several phones share (the emulator): each
// daemon given it keeps its state under its own phone name.
type SharedDB struct{ db *storage.DeviceDB }

// OpenSharedDB opens (creating if needed) a shared device database.
func OpenSharedDB(ctx context.Context, file string) (*SharedDB, error) {
	db, err := storage.OpenDevice(ctx, file)
	if err != nil {
		return nil, err
	}
	return &SharedDB{db: db}, nil
}

// Close closes the database, once every daemon using it has closed.
func (s *SharedDB) Close() error { return s.db.Close() }

// New opens the device database and prepares the link; Run starts them.
func New(cfg Config) (*Daemon, error) {
	if cfg.Service == "" {
		return nil, errors.New("daemon: no notification service URL")
	}
	if cfg.DataDir == "" && cfg.DB == nil {
		return nil, errors.New("daemon: no data directory")
	}
	defaults.Set[clock.Clock](&cfg.Clock, clock.Real{})
	defaults.Set(&cfg.Logger, slog.Default())
	defaults.Positive(&cfg.RunningGrace, DefaultRunningGrace)
	defaults.Positive(&cfg.OpenTimeout, DefaultOpenTimeout)
	defaults.Positive(&cfg.MaxChannels, DefaultMaxChannels)
	defaults.Positive(&cfg.HandlerConcurrency, DefaultHandlerConcurrency)
	defaults.Positive(&cfg.HandlerBacklog, DefaultHandlerBacklog)
	if cfg.Network == nil {
		cfg.Network = channel.CurrentNetwork
	}
	cfg.History = cfg.History.withDefaults()
	if cfg.Display == nil {
		d, err := platform.NewDisplay("log", cfg.Logger)
		if err != nil {
			return nil, err
		}
		cfg.Display = d
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Daemon{cfg: cfg, log: cfg.Logger, hub: newHub(), ctx: ctx, cancel: cancel}
	d.bg = newBackground(d)
	var db *storage.DeviceDB
	if cfg.DB != nil {
		db = cfg.DB.db
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			cancel()
			return nil, fmt.Errorf("daemon: data directory: %w", err)
		}
		var err error
		if db, err = storage.OpenDevice(ctx, filepath.Join(cfg.DataDir, "herald.db")); err != nil {
			cancel()
			return nil, err
		}
		d.db = db
	}
	d.store = db.Phone(cfg.Phone)
	fail := func(err error) (*Daemon, error) {
		if d.db != nil {
			d.db.Close()
		}
		cancel()
		return nil, err
	}
	lc := cfg.Link
	lc.Service, lc.Handler, lc.Clock, lc.Logger = cfg.Service, (*linkHandler)(d), cfg.Clock, cfg.Logger.With("part", "link")
	link, err := channel.New(lc)
	if err != nil {
		return fail(err)
	}
	d.link = link
	// Apps that were running when the daemon stopped get the grace period
	// to come back, not forever.
	if err := d.store.CapRunning(ctx, cfg.Clock.Now().Add(cfg.RunningGrace)); err != nil {
		return fail(err)
	}
	// Events queued before this start may have been sent by an earlier
	// process; the app may ack or resume after any of them.
	if d.hub.before, err = d.store.LastEventID(ctx); err != nil {
		return fail(err)
	}
	return d, nil
}

// Link exposes the link (status, tests).
func (d *Daemon) Link() *channel.Link { return d.link }

// Run serves the local API and keeps the link up until ctx ends or Close
// is called.
func (d *Daemon) Run(ctx context.Context) error {
	d.runWG.Add(1)
	defer d.runWG.Done()
	stop := context.AfterFunc(ctx, d.cancel)
	defer stop()
	// Before anything that could read it: the distributor is set once.
	d.up = d.startUnifiedPush()
	if d.cfg.Socket != "" {
		ln, err := platform.ListenSocket(d.cfg.Socket, d.cfg.SocketGroup)
		if err != nil {
			if d.up != nil {
				d.up.conn.Close()
			}
			d.cancel()
			return fmt.Errorf("daemon: %w", err)
		}
		d.ln = ln
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.serveAPI(d.ctx, ln)
		}()
		d.log.Info("local API listening", "socket", d.cfg.Socket, "group", d.cfg.SocketGroup)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.bg.run(d.ctx)
	}()
	if d.up != nil {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.up.run(d.ctx)
		}()
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.housekeep(d.ctx)
	}()
	if !d.cfg.NoNetworkWatch && d.cfg.DB == nil {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := channel.WatchNetwork(d.ctx, d.link.NetworkUp); err != nil {
				d.log.Warn("not watching for network changes", "err", err)
			}
		}()
	}
	err := d.link.Run(d.ctx)
	d.cancel()
	d.wg.Wait()
	return err
}

// Close stops Run and closes the database it opened. It waits for every
// goroutine.
func (d *Daemon) Close() error {
	d.streamMu.Lock()
	d.closing = true
	d.streamMu.Unlock()
	d.cancel()
	d.runWG.Wait()
	d.wg.Wait()
	d.streams.Wait()
	if d.db != nil {
		return d.db.Close()
	}
	return nil
}
