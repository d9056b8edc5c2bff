// Package natstest runs embedded NATS servers with JetStream for tests:
// loopback ports picked by the OS (or, for a cluster's, below the range
// the OS picks from), state in the test's temp dirs, stopped
// when the test ends.
package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/freeport"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readyWait bounds how long a server (or a cluster's quorum) may take to
// come up; a failsafe, not a measurement.
const readyWait = 30 * time.Second

// Server is one embedded NATS server.
type Server struct {
	*server.Server
	Opts      *server.Options
	stopAtEnd bool
}

// URL is the server's client URL, known before the server starts when
// its port was chosen (NewCluster).
func (s *Server) URL() string {
	if s.Opts.Port > 0 {
		return "nats://" + net.JoinHostPort(s.Opts.Host, strconv.Itoa(s.Opts.Port))
	}
	return s.ClientURL()
}

// Start starts a server with opts, as given, and waits until it takes
// clients; it is stopped when the test ends.
func Start(t testing.TB, opts *server.Options) *Server {
	t.Helper()
	return start(t, opts)
}

func start(t testing.TB, opts *server.Options) *Server {
	t.Helper()
	s := launch(t, opts)
	s.waitReady(t)
	return s
}

// launch starts a server without waiting for it to take clients: a
// clustered server with JetStream is not ready until it has peers.
func launch(t testing.TB, opts *server.Options) *Server {
	t.Helper()
	s := &Server{Opts: opts}
	s.launch(t)
	return s
}

func (s *Server) launch(t testing.TB) {
	t.Helper()
	ns, err := server.NewServer(s.Opts.Clone())
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	ns.Start()
	s.Server = ns
	if !s.stopAtEnd {
		// Once, at the first launch: a restarted server is stopped when
		// the test ends by the same cleanup, which keeps its place
		// (before the cleanups of what was started after the cluster,
		// such as the nodes using it).
		s.stopAtEnd = true
		t.Cleanup(s.Stop)
	}
}

// Restart stops the server, if it runs, and starts it again on the same
// ports and state directory, without waiting for it to take clients.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.Server != nil {
		if s.Opts.Port <= 0 {
			s.Opts.Port = s.Addr().(*net.TCPAddr).Port
		}
		s.Stop()
	}
	s.launch(t)
}

func (s *Server) waitReady(t testing.TB) {
	t.Helper()
	if !s.ReadyForConnections(readyWait) {
		t.Fatalf("nats server %s not ready", s.Opts.ServerName)
	}
}

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	if s.Server == nil {
		return // never launched
	}
	s.Shutdown()
	s.WaitForShutdown()
}

func options(t testing.TB, name string) *server.Options {
	return &server.Options{ServerName: name, Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true}
}

// Run starts a single server with JetStream.
func Run(t testing.TB) *Server {
	t.Helper()
	return start(t, options(t, "single"))
}

// RunWithUser starts a single server with JetStream that takes only the
// given user and password.
func RunWithUser(t testing.TB, user, password string) *Server {
	t.Helper()
	o := options(t, "single")
	o.Username, o.Password = user, password
	return start(t, o)
}

// Cluster is n servers routed to each other, one JetStream cluster.
type Cluster struct {
	Servers []*Server
}

// URLs is every server's client URL, comma-separated.
func (c *Cluster) URLs() string {
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.URL())
	}
	return strings.Join(urls, ",")
}

// RunCluster starts n servers and waits until JetStream has a meta leader
// and every server is current, so that R3 streams can be created.
func RunCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := NewCluster(t, n)
	c.Launch(t)
	for _, s := range c.Servers {
		s.waitReady(t)
	}
	c.WaitReady(t)
	return c
}

// NewCluster chooses the ports of n servers routed to each other and
// returns them unstarted (URLs already answers): Launch starts them.
func NewCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	// A clustered JetStream server needs its routes configured from the
	// start, so the ports are picked first (FreePort).
	freePort := func() int { return FreePort(t) }
	ports := make([]int, n)
	var routes []*url.URL
	for i := range ports {
		ports[i] = freePort()
		routes = append(routes, &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i]))})
	}
	for i := range n {
		o := options(t, fmt.Sprintf("n%d", i+1))
		o.Port = freePort()
		o.Cluster = server.ClusterOpts{Name: "herald-test", Host: "127.0.0.1", Port: ports[i]}
		o.Routes = routes
		c.Servers = append(c.Servers, &Server{Opts: o})
	}
	return c
}

// FreePort is a loopback port nothing listens on now (freeport.Port).
func FreePort(t testing.TB) int { t.Helper(); return freeport.Port(t) }

// Launch starts every server at once, waiting for none of them.
func (c *Cluster) Launch(t testing.TB) {
	t.Helper()
	for _, s := range c.Servers {
		s.launch(t)
	}
}

// WaitReady waits until the cluster has a meta leader and answers
// JetStream requests.
func (c *Cluster) WaitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(readyWait)
	for {
		if err := c.ready(); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("nats cluster not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) ready() error {
	leader := false
	for _, s := range c.Servers {
		if s.Running() && s.JetStreamIsLeader() {
			leader = true
		}
	}
	if !leader {
		return fmt.Errorf("no meta leader")
	}
	for _, s := range c.Servers {
		if !s.Running() {
			continue
		}
		if !s.JetStreamIsCurrent() {
			return fmt.Errorf("%s not current", s.Opts.ServerName)
		}
		nc, err := nats.Connect(s.URL())
		if err != nil {
			return err
		}
		js, err := jetstream.New(nc)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
		}
		nc.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", s.Opts.ServerName, err)
		}
	}
	return nil
}

// Connect is a client of the servers at urls for the rest of the test,
// with its JetStream API.
func Connect(t testing.TB, urls string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
