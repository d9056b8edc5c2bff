package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/heraldpush/herald/internal/freeport"
	"github.com/heraldpush/herald/internal/testenv"
)

// routeWait bounds how long two loopback servers take to route to each
// other, or a refused server to hear it was refused: a failsafe, not a
// measurement (both take milliseconds).
const routeWait = 15 * time.Second

// refusedLog is a nats-server logger that hands on every error a server
// logs about an authorization violation, with the connection it was on.
type refusedLog struct{ refused chan string }

func (l refusedLog) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(strings.ToLower(msg), "authorization violation") {
		select {
		case l.refused <- msg:
		default: // enough heard; the server retries every second
		}
	}
}
func (refusedLog) Noticef(string, ...any) {}
func (refusedLog) Warnf(string, ...any)   {}
func (refusedLog) Fatalf(string, ...any)  {}
func (refusedLog) Debugf(string, ...any)  {}
func (refusedLog) Tracef(string, ...any)  {}

// exampleServer starts the NATS server of run.sh's configuration conf
// with its cluster block as written, but for its ports: the example's
// fixed cluster ports 6221-6223 become ports, a free one for each, so
// that its routes still name the others. edit changes the options last.
func exampleServer(t *testing.T, conf string, ports map[string]int, edit func(*natsserver.Options), log natsserver.Logger) *natsserver.Server {
	t.Helper()
	opts, err := natsserver.ProcessConfigFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Cluster.Username == "" || opts.Cluster.Password == "" {
		t.Fatalf("%s: the cluster has no authorization", conf)
	}
	opts.Host, opts.Port, opts.StoreDir = "127.0.0.1", -1, t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	port := func(old int) int {
		p, ok := ports[strconv.Itoa(old)]
		if !ok {
			t.Fatalf("%s: cluster port %d is not the example's", conf, old)
		}
		return p
	}
	opts.Cluster.Port = port(opts.Cluster.Port)
	for _, r := range opts.Routes {
		_, old, err := net.SplitHostPort(r.Host)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(old)
		r.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port(n)))
	}
	if edit != nil {
		edit(opts)
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	if log != nil {
		ns.SetLogger(log, false, false)
	}
	// Not ReadyForConnections: a clustered JetStream server takes clients
	// once it has peers, and the refused one never will.
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// remoteNames are the servers ns has routes to.
func remoteNames(t *testing.T, ns *natsserver.Server) []string {
	t.Helper()
	rz, err := ns.Routez(nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rz.Routes {
		names = append(names, r.RemoteName)
	}
	return names
}

// Two servers from run.sh's configurations, cluster blocks intact, route
// to each other with the route password it wrote; a server that does not
// know it (a wrong password, none) is refused by both and routes to
// neither: it never sees the accounts.
func TestClusterExampleRoutesNeedCredentials(t *testing.T) {
	dir := exampleConfig(t)
	ports := map[string]int{"6221": freeport.Port(t), "6222": freeport.Port(t), "6223": freeport.Port(t)}
	// n3 is not started: its route URLs stay, as when one server is down.
	n1 := exampleServer(t, filepath.Join(dir, "nats1.conf"), ports, nil, nil)
	n2 := exampleServer(t, filepath.Join(dir, "nats2.conf"), ports, nil, nil)
	testenv.Eventually(t, routeWait, "n1 and n2 routed", func() bool { return n1.NumRoutes() > 0 && n2.NumRoutes() > 0 })

	for _, c := range []struct {
		name string
		user *url.Userinfo
	}{
		{"a wrong password", url.UserPassword("route", "not-the-route-password")},
		{"no credentials", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := refusedLog{refused: make(chan string, 16)}
			// The intruder is nats3.conf on a port of its own, which n1
			// and n2 never dial: what is tried is its own routes to them.
			intruderPorts := map[string]int{"6221": ports["6221"], "6222": ports["6222"], "6223": freeport.Port(t)}
			intruder := exampleServer(t, filepath.Join(dir, "nats3.conf"), intruderPorts, func(o *natsserver.Options) {
				o.ServerName = "intruder"
				o.Cluster.Password = "not-the-route-password"
				for _, r := range o.Routes {
					r.User = c.user
				}
			}, log)
			// Both servers answer its routes with an authorization
			// violation, which it logs naming the server's address.
			heard := map[int]bool{}
			deadline := time.After(routeWait)
			for !heard[ports["6221"]] || !heard[ports["6222"]] {
				select {
				case msg := <-log.refused:
					for _, p := range []int{ports["6221"], ports["6222"]} {
						if strings.Contains(msg, ":"+strconv.Itoa(p)+" ") {
							heard[p] = true
						}
					}
				case <-deadline:
					t.Fatalf("the intruder was not refused by both servers (refused by %v)", heard)
				}
			}
			// The refusal is n1's and n2's: neither registers a route
			// from the intruder, and they stay routed to each other.
			// (The intruder itself lists a route for the moment between
			// the INFO a server sends every connection and the -ERR that
			// answers its CONNECT: a server sends nothing else before
			// the CONNECT passes.)
			for _, ns := range []*natsserver.Server{n1, n2} {
				names := remoteNames(t, ns)
				if len(names) == 0 {
					t.Fatalf("%s lost its routes", ns.Name())
				}
				for _, name := range names {
					if name != "n1" && name != "n2" {
						t.Fatalf("%s routes to %q", ns.Name(), name)
					}
				}
			}
			testenv.Eventually(t, routeWait, "the intruder's refused routes closed", func() bool { return intruder.NumRoutes() == 0 })
		})
	}
}

// A route's password goes, in the route's CONNECT, to whatever answers at
// the address the route names: on one machine, a local user who binds a
// stopped server's cluster port learns it. With route TLS, the dialling
// server begins with a TLS handshake, which an impostor without a
// certificate from the routes' CA cannot complete, and the password is
// never sent (docs/cluster.md, Securing NATS).
func TestClusterExampleRoutePasswordToListener(t *testing.T) {
	dir := exampleConfig(t)
	pki := testenv.NewPKI(t)
	for _, c := range []struct {
		name   string
		tls    bool
		leaked bool
	}{
		{"no route TLS", false, true},
		{"route TLS", true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ports := map[string]int{"6221": freeport.Port(t), "6222": freeport.Port(t), "6223": freeport.Port(t)}
			// The impostor holds n3's cluster port while n3 is down;
			// n2 is down too, so n1 dials only the impostor.
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ports["6223"])))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var password string
			exampleServer(t, filepath.Join(dir, "nats1.conf"), ports, func(o *natsserver.Options) {
				for _, r := range o.Routes {
					if p, ok := r.User.Password(); ok {
						password = p
					}
				}
				if c.tls {
					cert, err := tls.LoadX509KeyPair(pki.CertFile, pki.KeyFile)
					if err != nil {
						t.Fatal(err)
					}
					roots := x509.NewCertPool()
					roots.AddCert(pki.CA)
					o.Cluster.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ClientCAs: roots,
						ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
					o.Cluster.TLSTimeout = 2
				}
			}, nil)
			if password == "" {
				t.Fatal("nats1.conf's routes carry no password")
			}

			ln.(*net.TCPListener).SetDeadline(time.Now().Add(routeWait))
			conn, err := ln.Accept()
			if err != nil {
				t.Fatalf("n1 never dialled the impostor: %v", err)
			}
			defer conn.Close()
			// What n1 sends first, up to its CONNECT line or the first
			// TLS record's header and body.
			conn.SetReadDeadline(time.Now().Add(routeWait))
			var got []byte
			buf := make([]byte, 4096)
			for !bytes.Contains(got, []byte("CONNECT")) || !bytes.Contains(got, []byte("\r\n")) {
				if len(got) >= 5 && got[0] == 0x16 && len(got) >= 5+int(got[3])<<8|int(got[4]) {
					break // a whole TLS handshake record
				}
				n, err := conn.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			if leaked := bytes.Contains(got, []byte(password)); leaked != c.leaked {
				t.Fatalf("the route password sent to the impostor: %v; want %v (n1 sent %q)", leaked, c.leaked, got)
			}
			if c.tls && (len(got) == 0 || got[0] != 0x16) {
				t.Fatalf("n1 began with %q; want a TLS handshake record", got)
			}
		})
	}
}
