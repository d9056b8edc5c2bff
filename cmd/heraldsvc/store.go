package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/natsstore"
)

// natsFlags choose the store: SQLite (the default) or NATS JetStream.
type natsFlags struct {
	urls, prefix                string
	replicas                    int
	creds, nkey, user, password string
	tlsCert, tlsKey, tlsCA      string
}

func (n *natsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&n.urls, "store", "", "NATS JetStream servers holding the store, comma-separated (nats://h1:4222,nats://h2:4222,...); without it, SQLite in --db")
	fs.IntVar(&n.replicas, "store-replicas", 0, "servers keeping each copy of the store (default 3 with three or more --store URLs, else 1)")
	fs.StringVar(&n.prefix, "store-prefix", "herald", "names of the store's buckets and stream, so services can share a NATS cluster")
	fs.StringVar(&n.creds, "nats-creds", "", "NATS credentials file (JWT and nkey seed)")
	fs.StringVar(&n.nkey, "nats-nkey", "", "NATS nkey seed file")
	fs.StringVar(&n.user, "nats-user", "", "NATS user name")
	fs.StringVar(&n.password, "nats-password", "", "NATS password (prefer a credentials file: flags show in ps)")
	fs.StringVar(&n.tlsCert, "nats-tls-cert", "", "PEM client certificate for NATS over TLS")
	fs.StringVar(&n.tlsKey, "nats-tls-key", "", "PEM key of --nats-tls-cert")
	fs.StringVar(&n.tlsCA, "nats-tls-ca", "", "PEM CA certificates to trust for the NATS servers")
}

// check refuses flags that cannot work before anything is opened.
func (n *natsFlags) check() error {
	if n.urls == "" {
		if n.creds != "" || n.nkey != "" || n.user != "" || n.tlsCert != "" || n.tlsCA != "" || n.replicas != 0 {
			return errors.New("NATS flags without --store")
		}
		return nil
	}
	for _, u := range strings.Split(n.urls, ",") {
		u = strings.TrimSpace(u)
		if !strings.HasPrefix(u, "nats://") && !strings.HasPrefix(u, "tls://") {
			return fmt.Errorf("--store: %q is not a nats:// or tls:// URL", u)
		}
	}
	if (n.tlsCert == "") != (n.tlsKey == "") {
		return errors.New("--nats-tls-cert and --nats-tls-key go together")
	}
	if n.replicas < 0 || n.replicas > 5 {
		return errors.New("--store-replicas must be 1-5")
	}
	return nil
}

// open returns the NATS store and the cluster's presence, or nils for
// SQLite on one node. The store is not ready yet: it sets itself up in
// the background while the node listens and answers 503 (see its Wait).
func (n *natsFlags) open(depth int, log *slog.Logger) (store.Store, store.Presence, store.Quota, error) {
	if n.urls == "" {
		return nil, nil, nil, nil
	}
	var opts []nats.Option
	if n.creds != "" {
		opts = append(opts, nats.UserCredentials(n.creds))
	}
	if n.nkey != "" {
		o, err := nats.NkeyOptionFromSeed(n.nkey)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--nats-nkey: %w", err)
		}
		opts = append(opts, o)
	}
	if n.user != "" {
		opts = append(opts, nats.UserInfo(n.user, n.password))
	}
	if n.tlsCert != "" {
		opts = append(opts, nats.ClientCert(n.tlsCert, n.tlsKey))
	}
	if n.tlsCA != "" {
		opts = append(opts, nats.RootCAs(n.tlsCA))
	}
	replicas := n.replicas
	if replicas == 0 {
		replicas = 1
		if len(strings.Split(n.urls, ",")) >= 3 {
			replicas = 3
		}
	}
	for _, w := range natsWarnings(n.urls, n.creds != "" || n.nkey != "" || n.user != "" || n.tlsCert != "", n.tlsCA != "" || n.tlsCert != "") {
		log.Warn(w)
	}
	s, err := natsstore.Start(natsstore.Options{URLs: n.urls, NATS: opts, Replicas: replicas, QueueDepth: depth,
		Prefix: n.prefix, Logger: log})
	if err != nil {
		return nil, nil, nil, err
	}
	log.Info("store on NATS JetStream", "servers", redactURLs(n.urls), "replicas", replicas, "prefix", n.prefix)
	return s, s, s, nil
}
