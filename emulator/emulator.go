// Package emulator runs many phones in one process: each is a full device
// daemon with its own identity, channels, tiles, toasts, power level and
// websocket to the notification service, and all of them keep their state
// in one SQLite database.
package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/platform"
)

// DeviceHeader selects the phone a local API request is for; the query
// parameter "device" does the same for clients that cannot set headers.
const DeviceHeader = app.DeviceHeader

// ErrUnknownDevice: the request named a phone the emulator does not run.
var ErrUnknownDevice = errors.New("emulator: unknown device")

// MaxDevices bounds --devices; each phone costs a websocket and a few
// goroutines.
const MaxDevices = 10000

// Config configures an Emulator.
type Config struct {
	// Devices is how many phones to run.
	Devices int
	// Service is the notification service's base URL.
	Service string
	// DB is the SQLite file every phone keeps its state in.
	DB     string
	Clock  clock.Clock
	Logger *slog.Logger
	// Link tunes each phone's connection.
	Link channel.Config
	// OnChange, when set, hears every phone's changes (the UI).
	OnChange func(phone string, c daemon.Change)
	// Starting is how many phones may be connecting at once (default
	// DefaultStarting). Enrolment writes both databases; a thousand at
	// once would queue on SQLite's write lock past its busy timeout and
	// send most phones into backoff.
	Starting int
	// StartTimeout is how long a phone may take to connect before the
	// next one starts anyway (default DefaultStartTimeout).
	StartTimeout time.Duration
	// PeerCred tells the user at the other end of a local API connection
	// (default daemon.SocketPeerUID); each phone binds its app ids to
	// users as a real device does.
	PeerCred daemon.PeerCred
}

// Start-up defaults.
const (
	DefaultStarting     = 16
	DefaultStartTimeout = 10 * time.Second
)

// Emulator is a set of running phones.
type Emulator struct {
	cfg    Config
	db     *daemon.SharedDB
	names  []string
	phones map[string]*daemon.Daemon
	apis   map[string]http.Handler
	up     map[string]chan struct{} // closed when the phone first connects
	wg     sync.WaitGroup
}

// Name returns the name of phone i (0-based) of n; names sort in order.
func Name(i, n int) string {
	width := len(fmt.Sprint(n))
	if width < 4 {
		width = 4
	}
	return fmt.Sprintf("phone-%0*d", width, i+1)
}

// New opens the database and prepares the phones; Run connects them.
func New(ctx context.Context, cfg Config) (*Emulator, error) {
	if cfg.Devices < 1 || cfg.Devices > MaxDevices {
		return nil, fmt.Errorf("emulator: --devices must be 1 to %d, not %d", MaxDevices, cfg.Devices)
	}
	if cfg.DB == "" {
		return nil, errors.New("emulator: no database file")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Starting <= 0 {
		cfg.Starting = DefaultStarting
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if err := os.MkdirAll(filepath.Dir(cfg.DB), 0o700); err != nil {
		return nil, fmt.Errorf("emulator: data directory: %w", err)
	}
	db, err := daemon.OpenSharedDB(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	e := &Emulator{cfg: cfg, db: db, phones: map[string]*daemon.Daemon{}, apis: map[string]http.Handler{}, up: map[string]chan struct{}{}}
	for i := range cfg.Devices {
		name := Name(i, cfg.Devices)
		up := make(chan struct{})
		var once sync.Once
		onChange := func(c daemon.Change) {
			if c.Kind == daemon.ChangeLink {
				if d := e.phones[name]; d != nil && d.Link().Connected() {
					once.Do(func() { close(up) })
				}
			}
			if cfg.OnChange != nil {
				cfg.OnChange(name, c)
			}
		}
		e.up[name] = up
		d, err := daemon.New(daemon.Config{Service: cfg.Service, DB: db, Phone: name, Clock: cfg.Clock,
			Logger: cfg.Logger.With("phone", name), Link: cfg.Link, OnChange: onChange,
			// The UI shows the toasts; a desktop popup per phone would
			// be noise.
			Display:     quietDisplay{},
			PowerSource: func() (platform.PowerLevel, error) { return platform.PowerNormal, nil }})
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("emulator: %s: %w", name, err)
		}
		e.names = append(e.names, name)
		e.phones[name] = d
		e.apis[name] = d.Handler()
	}
	return e, nil
}

type quietDisplay struct{}

func (quietDisplay) Show(context.Context, platform.Toast) error { return nil }

// Names lists the phones in order.
func (e *Emulator) Names() []string { return e.names }

// Phone returns the named phone, or nil.
func (e *Emulator) Phone(name string) *daemon.Daemon { return e.phones[name] }

// Run connects every phone, a few at a time, and keeps them running until
// ctx ends.
func (e *Emulator) Run(ctx context.Context) error {
	errs := make(chan error, len(e.names))
	slots := make(chan struct{}, e.cfg.Starting)
starting:
	for _, name := range e.names {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break starting
		}
		d := e.phones[name]
		e.wg.Add(2)
		go func() {
			defer e.wg.Done()
			if err := d.Run(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
		// The slot is free once the phone is up, or has had its time.
		go func() {
			defer e.wg.Done()
			t := e.cfg.Clock.NewTimer(e.cfg.StartTimeout)
			defer t.Stop()
			select {
			case <-e.up[name]:
			case <-t.C():
			case <-ctx.Done():
			}
			<-slots
		}()
	}
	e.wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Connected counts the phones whose link is up.
func (e *Emulator) Connected() int {
	n := 0
	for _, d := range e.phones {
		if d.Link().Connected() {
			n++
		}
	}
	return n
}

// Close stops every phone and closes the database.
func (e *Emulator) Close() error {
	for _, d := range e.phones {
		d.Close()
	}
	e.wg.Wait()
	return e.db.Close()
}

// Handler is the local API of every phone: the daemon's /v1 routes, for
// the phone named by the X-Herald-Device header or ?device=, or the first
// phone when neither is given (so single-phone tools keep working).
func (e *Emulator) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get(DeviceHeader)
		if name == "" {
			name = r.URL.Query().Get("device")
		}
		if name == "" {
			name = e.names[0]
		}
		h, ok := e.apis[name]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(app.ErrorResponse{Code: app.CodeNotFound,
				Message: fmt.Sprintf("%v %q (phones are %s … %s)", ErrUnknownDevice, name, e.names[0], e.names[len(e.names)-1])})
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Serve serves Handler on a Unix socket until ctx ends.
func (e *Emulator) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }, ConnContext: daemon.ConnContext(e.cfg.PeerCred)}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("emulator: local API: %w", err)
	}
	return nil
}
