package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/natsstore"
)

// tlsNATS starts an embedded NATS server with JetStream that takes
// clients over TLS only, with the certificate pki issued for 127.0.0.1,
// and asks them for a certificate of pki's CA when verify is set. auth
// sets who may connect. It returns the server's host:port.
func tlsNATS(t *testing.T, pki testenv.PKI, verify bool, auth func(*server.Options)) string {
	t.Helper()
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: pki.CertFile, KeyFile: pki.KeyFile, CaFile: pki.CAFile, Verify: verify})
	if err != nil {
		t.Fatal(err)
	}
	o := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		TLS: true, TLSVerify: verify, TLSConfig: tc, TLSTimeout: 2}
	auth(o)
	ns := natstest.Start(t, o)
	return "127.0.0.1:" + strconv.Itoa(ns.Addr().(*net.TCPAddr).Port)
}

// waitLog is a slog handler that hands on the error of the store's first
// "waiting for the store" warning: what an operator reads when the node
// cannot reach NATS and keeps trying.
type waitLog struct {
	slog.Handler
	once    *sync.Once
	waiting chan string
}

func (w waitLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && r.Message == "natsstore: waiting for the store" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				w.once.Do(func() { w.waiting <- a.Value.String() })
			}
			return true
		})
	}
	return w.Handler.Handle(ctx, r)
}

func (w waitLog) WithAttrs(as []slog.Attr) slog.Handler {
	return waitLog{Handler: w.Handler.WithAttrs(as), once: w.once, waiting: w.waiting}
}

// lockedBuffer is a log the store's goroutines write while the test
// reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// openStore opens the store as `heraldsvc serve` does from its command
// line, args being the NATS flags docs/cluster.md gives operators.
func openStore(t *testing.T, args []string, log *slog.Logger) *natsstore.Store {
	t.Helper()
	var n natsFlags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	n.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := n.check(); err != nil {
		t.Fatal(err)
	}
	st, _, _, err := n.open(16, log)
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*natsstore.Store)
	t.Cleanup(func() { s.Close() })
	return s
}

// A node reaches NATS over TLS, with the CA and credentials given as
// docs/cluster.md says (--nats-tls-ca, --nats-nkey or --nats-user and
// --nats-password, --nats-tls-cert and --nats-tls-key, tls:// or nats://
// URLs), and its store works. Without the CA it never connects and says
// why (an unknown authority); without credentials, or without the client
// certificate a server verifies, it is refused.
func TestServeStoreOverTLS(t *testing.T) {
	pki := testenv.NewPKI(t)
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	seedFile := filepath.Join(t.TempDir(), "node.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	// One server as the example's, with TLS: an nkey user. Another that
	// also verifies clients' certificates (tls { verify: true }), with a
	// user and password.
	nkeyAddr := tlsNATS(t, pki, false, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	mtlsAddr := tlsNATS(t, pki, true, func(o *server.Options) { o.Username, o.Password = "herald", "s3cret" })

	i := 0
	// ok: the store works; otherwise the node either exits (Wait's error,
	// permanent: a refusal no retry mends) or waits, logging why (the
	// first WARN's error).
	for _, c := range []struct {
		name      string
		args      []string
		ok        bool
		exits     error
		waitsWith []string // any of
	}{
		{name: "tls:// URL, the CA and an nkey", ok: true,
			args: []string{"--store", "tls://" + nkeyAddr, "--nats-tls-ca", pki.CAFile, "--nats-nkey", seedFile}},
		{name: "nats:// URL and the CA", ok: true,
			args: []string{"--store", "nats://" + nkeyAddr, "--nats-tls-ca", pki.CAFile, "--nats-nkey", seedFile}},
		{name: "client certificate, the CA, user and password", ok: true,
			args: []string{"--store", "tls://" + mtlsAddr, "--nats-tls-ca", pki.CAFile, "--nats-tls-cert", pki.ClientCertFile,
				"--nats-tls-key", pki.ClientKeyFile, "--nats-user", "herald", "--nats-password", "s3cret"}},
		{name: "without the CA", waitsWith: []string{"certificate signed by unknown authority"},
			args: []string{"--store", "tls://" + nkeyAddr, "--nats-nkey", seedFile}},
		{name: "without credentials", exits: nats.ErrAuthorization,
			args: []string{"--store", "tls://" + nkeyAddr, "--nats-tls-ca", pki.CAFile}},
		{name: "a wrong password", exits: nats.ErrAuthorization,
			args: []string{"--store", "tls://" + mtlsAddr, "--nats-tls-ca", pki.CAFile, "--nats-tls-cert", pki.ClientCertFile,
				"--nats-tls-key", pki.ClientKeyFile, "--nats-user", "herald", "--nats-password", "wrong"}},
		// The server's alert, or, when the client writes before reading
		// it, the connection it closed.
		{name: "without the client certificate", waitsWith: []string{"certificate required", "connection closed by remote after TLS handshake"},
			args: []string{"--store", "tls://" + mtlsAddr, "--nats-tls-ca", pki.CAFile, "--nats-user", "herald", "--nats-password", "s3cret"}},
	} {
		i++
		t.Run(c.name, func(t *testing.T) {
			// Buckets of its own on the shared servers.
			args := append(c.args, "--store-prefix", "t"+strconv.Itoa(i))
			var logs lockedBuffer
			w := waitLog{Handler: slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
				once: new(sync.Once), waiting: make(chan string, 1)}
			s := openStore(t, args, slog.New(w))
			// A failsafe far above the milliseconds a loopback server
			// takes to answer (or refuse).
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			switch {
			case c.ok:
				if err := s.Wait(ctx); err != nil {
					t.Fatalf("store not ready: %v\n%s", err, logs.String())
				}
				useStore(t, s)
			case c.exits != nil:
				err := s.Wait(ctx)
				if !errors.Is(err, c.exits) {
					t.Fatalf("store ended with %v; want %v", err, c.exits)
				}
			default:
				select {
				case got := <-w.waiting:
					if !slices.ContainsFunc(c.waitsWith, func(w string) bool { return strings.Contains(got, w) }) {
						t.Fatalf("waiting for the store with %q; want one of %q", got, c.waitsWith)
					}
				case <-ctx.Done():
					t.Fatalf("no warning of waiting for the store:\n%s", logs.String())
				}
				if err := s.Ready(); !errors.Is(err, store.ErrNotReady) {
					t.Fatalf("Ready: %v; want not ready", err)
				}
			}
			s.Close() // its log is complete
			if strings.Contains(logs.String(), "s3cret") || strings.Contains(logs.String(), string(seed)) {
				t.Fatalf("a credential in the log:\n%s", logs.String())
			}
		})
	}
}

// useStore enrols a device, queues a notification for it and reads it
// back: the store works over the connection, not merely connects.
func useStore(t *testing.T, s *natsstore.Store) {
	t.Helper()
	ctx := context.Background()
	now := time.Unix(1_700_000_000, 0).UTC()
	if err := s.CreateDevice(ctx, store.Device{ID: "dev", SecretHash: []byte("hash"), CreatedAt: now, LastSeen: now, Power: "normal"}); err != nil {
		t.Fatal(err)
	}
	q, err := s.Enqueue(ctx, store.Queued{DeviceID: "dev", ChannelID: "ch", Kind: "toast", Class: 2, MessageID: "m1",
		Body: []byte("<toast>over TLS</toast>"), AcceptedAt: now, DueAt: now}, store.EnqueueOptions{MaxDepth: 16})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Pending(ctx, "dev", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Seq != q.Seq || string(got[0].Body) != "<toast>over TLS</toast>" {
		t.Fatalf("pending %+v; want the one notification, seq %d", got, q.Seq)
	}
}
