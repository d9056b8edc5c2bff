package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/heraldpush/herald/storage"
)

// ServeConfig describes a whole notification service: database, listener
// and routing options.
type ServeConfig struct {
	// Listen is the address to listen on, e.g. 127.0.0.1:8790 (":0" picks a
	// free port).
	Listen string
	// DB is the SQLite database file.
	DB string
	// PublicURL is the base of channel URIs; "" uses http://<listen address>.
	PublicURL string
	// NoGroupCommit commits each notification in its own transaction
	// (only for measuring what group commit buys).
	NoGroupCommit bool
	// Server holds the routing options; Store and PublicURL are filled in.
	Server Config
}

// Service is a running notification service.
type Service struct {
	*Server
	Store *storage.ServiceStore
	http  *http.Server
	ln    net.Listener
	url   string
	done  chan struct{}
}

// Start opens the database, listens and serves until Close.
func Start(ctx context.Context, cfg ServeConfig) (*Service, error) {
	store, err := storage.OpenService(ctx, cfg.DB, storage.ServiceOptions{GroupCommit: !cfg.NoGroupCommit})
	if err != nil {
		return nil, err
	}
	ln, err := Listen(ctx, cfg.Listen)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("server: listen: %w", err)
	}
	url := cfg.PublicURL
	if url == "" {
		url = "http://" + ln.Addr().String()
	}
	sc := cfg.Server
	sc.Store, sc.PublicURL = store, url
	srv, err := New(sc)
	if err != nil {
		ln.Close()
		store.Close()
		return nil, err
	}
	s := &Service{Server: srv, Store: store, ln: ln, url: srv.cfg.PublicURL, done: make(chan struct{})}
	s.http = &http.Server{
		Handler: srv.Handler(),
		// Slow senders may not hold connections open: the headers must
		// arrive within 5 s and a 3 KB body within 15 s.
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          nil,
	}
	go func() {
		defer close(s.done)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			srv.log.Error("notification service stopped", "err", err)
		}
	}()
	srv.log.Info("notification service listening", "addr", ln.Addr().String(), "public_url", s.url)
	return s, nil
}

// URL returns the service's public base URL.
func (s *Service) URL() string { return s.url }

// Addr returns the address it listens on.
func (s *Service) Addr() net.Addr { return s.ln.Addr() }

// Close stops accepting requests, disconnects devices and closes the
// database, waiting for all of it.
func (s *Service) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	<-s.done
	s.Server.Close()
	if cerr := s.Store.Close(); err == nil {
		err = cerr
	}
	return err
}
