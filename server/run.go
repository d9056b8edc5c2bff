package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/heraldpush/herald/server/store"
)

// ServeConfig describes a whole notification service: store, listener
// and routing options.
type ServeConfig struct {
	// Listen is the address to listen on, e.g. 127.0.0.1:8790 (":0" picks a
	// free port).
	Listen string
	// Store is the service's store, opened by the caller: the mains pick
	// the backend (server/store/sqlitestore on one node, natsstore for a
	// cluster), so this package carries none. The service runs its
	// background work (store.Runner) and closes it when it stops.
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
	// Server holds the routing options; Store and PublicURL are filled in.
	Server Config
}

// Service is a whole notification service: its listeners, its Server and
// its store, which Run starts and stops together.
type Service struct {
	*Server
	// Store is ServeConfig.Store.
	Store store.Store
	http  *http.Server
	ln    net.Listener
	tlsLn net.Listener
	url   string

	// Set by Start: cancel ends Run, done is closed once it has returned
	// runErr.
	cancel context.CancelFunc
	done   chan struct{}
	runErr error
}

// shutdownWait bounds how long stopping waits for HTTP handlers.
const shutdownWait = 10 * time.Second

// NewService listens and builds the server around cfg.Store. It starts no
// goroutine: Run serves. If it fails, it closes cfg.Store.
func NewService(ctx context.Context, cfg ServeConfig) (*Service, error) {
	backend := cfg.Store
	if backend == nil {
		return nil, errors.New("server: no store")
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
	acceptErrs.log, acceptErrs.now = srv.log, srv.cfg.Clock.Now
	srv.metrics.reg.MustRegister(acceptErrs.counter)
	s := &Service{Server: srv, Store: backend, ln: ln, tlsLn: tlsLn, url: srv.cfg.PublicURL}
	headerTimeout, readTimeout := cfg.ReadHeaderTimeout, cfg.ReadTimeout
	if headerTimeout <= 0 {
		headerTimeout = 5 * time.Second
	}
	if readTimeout <= 0 {
		readTimeout = 15 * time.Second
	}
	s.http = &http.Server{
		// Both listeners come from Listen, with TCP keepalive off.
		Handler: srv.handler(true),
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
	return s, nil
}

// Start is NewService, then Run in the background until Close.
func Start(ctx context.Context, cfg ServeConfig) (*Service, error) {
	s, err := NewService(ctx, cfg)
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		s.runErr = s.Run(runCtx)
	}()
	return s, nil
}

// Run serves until ctx ends or a part fails, then stops the parts in this
// order, each once the one before has finished, so that nothing is left
// writing to a part already gone:
//
//  1. the listeners and the HTTP handlers (at most shutdownWait);
//  2. the device sessions, each asked to retry later, whose ends write
//     their last-seen to the store, and the server's sweeps (Server.Run);
//  3. the store's background work, which applies the lazy acks
//     (store.Runner);
//  4. the store itself.
//
// It returns the error of the part that failed, or nil.
func (s *Service) Run(ctx context.Context) error {
	log := s.Server.log
	// The parts stop when told below, not when ctx ends.
	storeCtx, stopStore := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStore()
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServer()

	storeDone := make(chan error, 1)
	if r, ok := s.Store.(store.Runner); ok {
		go func() { storeDone <- r.Run(storeCtx) }()
	} else {
		close(storeDone)
	}
	serverDone := make(chan error, 1)
	go func() { serverDone <- s.Server.Run(srvCtx) }()
	listeners := []net.Listener{s.ln}
	if s.tlsLn != nil {
		listeners = append(listeners, s.tlsLn)
		log.Info("TLS listening", "addr", s.tlsLn.Addr().String(), "auth_url", s.cfg.AuthURL)
	}
	serveDone := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() {
			err := s.http.Serve(l)
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			} else {
				log.Error("notification service stopped", "addr", l.Addr().String(), "err", err)
			}
			serveDone <- err
		}()
	}
	log.Info("notification service listening", "addr", s.ln.Addr().String(), "public_url", s.url)

	// A part that ends with an error stops the service; a store closed
	// under it (nil) leaves the service answering 503 until stopped.
	var failed error
	waiting := len(listeners)
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case failed = <-serveDone:
			waiting--
			break wait
		case err := <-storeDone:
			storeDone = nil
			if err != nil {
				failed = fmt.Errorf("server: store: %w", err)
				break wait
			}
		case err := <-serverDone:
			serverDone = nil
			if err != nil {
				failed = err
				break wait
			}
		}
	}

	// 1. No new requests; the handlers running finish.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownWait)
	err := s.http.Shutdown(sctx)
	cancel()
	for ; waiting > 0; waiting-- {
		err = errors.Join(err, <-serveDone)
	}
	// 2. The sessions end while the store still takes their writes.
	s.Server.Close()
	stopServer()
	if serverDone != nil {
		err = errors.Join(err, <-serverDone)
	}
	// 3. The store applies what it holds.
	stopStore()
	if storeDone != nil {
		err = errors.Join(err, <-storeDone)
	}
	// 4.
	err = errors.Join(err, s.Store.Close())
	if failed != nil {
		return errors.Join(failed, err)
	}
	return err
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

// Close stops a service Start started (see Run for the order), waiting
// for all of it; for one NewService made and nothing ran, it closes the
// listeners and the store.
func (s *Service) Close() error {
	if s.cancel == nil {
		s.ln.Close()
		if s.tlsLn != nil {
			s.tlsLn.Close()
		}
		s.Server.Close()
		return s.Store.Close()
	}
	s.cancel()
	<-s.done
	return s.runErr
}
