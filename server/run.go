package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/storage"
)

// ServeConfig describes a whole notification service: database, listener
// and routing options.
type ServeConfig struct {
	// Listen is the address to listen on, e.g. 127.0.0.1:8790 (":0" picks a
	// free port).
	Listen string
	// DB is the SQLite database file, unless Store is set.
	DB string
	// Store, if set, is the store to use instead of SQLite (a replicated
	// one shared by several nodes); the service closes it on Close.
	Store store.Store
	// PublicURL is the base of channel URIs; "" uses http://<listen address>,
	// or https://<TLS listen address> with TLSPublic.
	PublicURL string
	// TLSPublic makes channel URIs https on the TLS listener when
	// PublicURL is "": Web Push senders speak nothing else.
	TLSPublic bool
	// TLSListen, when set, is a second listener speaking TLS with the
	// certificate in TLS. It serves everything the plain listener does:
	// devices dial wss:// there, and with TLS.ClientCA authenticated
	// senders reach their https channel URIs there.
	TLSListen string
	TLS       TLSFiles
	// AuthURL is the base of https channel URIs; "" uses
	// https://<TLS listen address>.
	AuthURL string
	// ReadHeaderTimeout and ReadTimeout bound how long a client may take
	// to send its headers and its whole request, against slow-sending
	// clients holding connections open (defaults 5 s and 15 s).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	// NoGroupCommit commits each notification in its own transaction
	// (only for measuring what group commit buys).
	NoGroupCommit bool
	// Server holds the routing options; Store and PublicURL are filled in.
	Server Config
}

// Service is a running notification service.
type Service struct {
	*Server
	// Store is the SQLite store, nil when ServeConfig.Store was given.
	Store   *storage.ServiceStore
	backend store.Store
	http    *http.Server
	ln      net.Listener
	tlsLn   net.Listener
	url     string
	done    chan struct{}
}

// Start opens the database, listens and serves until Close.
func Start(ctx context.Context, cfg ServeConfig) (*Service, error) {
	// The server and its metrics come after the store; until then there
	// is nothing to commit, and the observer has nowhere to report.
	var m atomic.Pointer[metrics]
	onCommit := func(requests int, took time.Duration, err error) {
		if mm := m.Load(); mm != nil {
			mm.commit(requests, took, err)
		}
	}
	var sqlite *storage.ServiceStore
	backend := cfg.Store
	if backend == nil {
		var err error
		sqlite, err = storage.OpenService(ctx, cfg.DB, storage.ServiceOptions{GroupCommit: !cfg.NoGroupCommit, OnCommit: onCommit})
		if err != nil {
			return nil, err
		}
		backend = sqlite
	}
	// Failed accepts are warned of and counted, and each listener keeps a
	// descriptor to turn a connection away when the process has no other
	// (acceptguard.go).
	acceptErrs := newAcceptErrors()
	ln, err := Listen(ctx, cfg.Listen)
	if err != nil {
		backend.Close()
		return nil, fmt.Errorf("server: listen: %w", err)
	}
	ln = guardListener(ln, acceptErrs)
	sc := cfg.Server
	var tlsLn net.Listener
	if cfg.TLSListen != "" {
		tc, pool, err := LoadTLS(cfg.TLS)
		if err == nil {
			tlsLn, err = Listen(ctx, cfg.TLSListen)
		}
		if err != nil {
			ln.Close()
			backend.Close()
			return nil, fmt.Errorf("server: TLS listener: %w", err)
		}
		tlsLn = tls.NewListener(guardListener(tlsLn, acceptErrs), tc)
		if pool != nil {
			sc.ClientCAs = pool
			sc.AuthURL = cfg.AuthURL
			if sc.AuthURL == "" {
				sc.AuthURL = "https://" + tlsLn.Addr().String()
			}
		}
	}
	url := cfg.PublicURL
	switch {
	case url == "" && cfg.TLSPublic && tlsLn != nil:
		url = "https://" + tlsLn.Addr().String()
	case url == "":
		url = "http://" + ln.Addr().String()
	}
	sc.Store, sc.PublicURL = backend, url
	srv, err := New(sc)
	if err != nil {
		ln.Close()
		if tlsLn != nil {
			tlsLn.Close()
		}
		backend.Close()
		return nil, err
	}
	m.Store(srv.metrics)
	acceptErrs.log, acceptErrs.now = srv.log, srv.cfg.Clock.Now
	srv.metrics.reg.MustRegister(acceptErrs.counter)
	s := &Service{Server: srv, Store: sqlite, backend: backend, ln: ln, tlsLn: tlsLn, url: srv.cfg.PublicURL, done: make(chan struct{})}
	headerTimeout, readTimeout := cfg.ReadHeaderTimeout, cfg.ReadTimeout
	if headerTimeout <= 0 {
		headerTimeout = 5 * time.Second
	}
	if readTimeout <= 0 {
		readTimeout = 15 * time.Second
	}
	s.http = &http.Server{
		Handler: srv.Handler(),
		// Slow senders may not hold connections open: the headers must
		// arrive within 5 s and a 3 KB body within 15 s.
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       90 * time.Second,
		// A first, coarse bound; Go adds 4 KB of slack to it, so the
		// handlers enforce the exact limit themselves.
		MaxHeaderBytes: srv.cfg.Limits.MaxHeaderBytes + MaxURILength,
		// Go's per-connection error lines (TLS handshakes of scanners,
		// bad requests) go to the structured log at debug level.
		ErrorLog: slog.NewLogLogger(srv.log.Handler(), slog.LevelDebug),
	}
	serve := func(l net.Listener) {
		if err := s.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			srv.log.Error("notification service stopped", "addr", l.Addr().String(), "err", err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); serve(ln) }()
	if tlsLn != nil {
		wg.Add(1)
		go func() { defer wg.Done(); serve(tlsLn) }()
		srv.log.Info("TLS listening", "addr", tlsLn.Addr().String(), "auth_url", srv.cfg.AuthURL)
	}
	go func() {
		wg.Wait()
		close(s.done)
	}()
	srv.log.Info("notification service listening", "addr", ln.Addr().String(), "public_url", s.url)
	return s, nil
}

// URL returns the service's public base URL.
func (s *Service) URL() string { return s.url }

// Addr returns the address it listens on.
func (s *Service) Addr() net.Addr { return s.ln.Addr() }

// TLSAddr returns the authenticated listener's address, or nil.
func (s *Service) TLSAddr() net.Addr {
	if s.tlsLn == nil {
		return nil
	}
	return s.tlsLn.Addr()
}

// AuthURL returns the base of https channel URIs ("" without TLS).
func (s *Service) AuthURL() string { return s.cfg.AuthURL }

// Close stops accepting requests, disconnects devices and closes the
// database, waiting for all of it.
func (s *Service) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	<-s.done
	s.Server.Close()
	if cerr := s.backend.Close(); err == nil {
		err = cerr
	}
	return err
}
