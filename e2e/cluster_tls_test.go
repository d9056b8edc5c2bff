package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/heraldpush/herald/internal/devtls"
	"github.com/heraldpush/herald/internal/freeport"
	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server/store/natsstore"
)

// docBlock returns the first fenced code block after the line starting
// with intro in the section under heading of the Markdown file page,
// failing with what is missing if the page no longer has that shape.
func docBlock(t *testing.T, page, heading, intro string) string {
	t.Helper()
	data, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	const (
		seekHeading = iota
		seekIntro
		seekFence
		inBlock
	)
	state := seekHeading
	var block []string
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case state == seekHeading && line == heading:
			state = seekIntro
		case state > seekHeading && state < inBlock && strings.HasPrefix(line, "## "):
			t.Fatalf("%s: no code block after %q in %q: the page changed shape", page, intro, heading)
		case state == seekIntro && strings.HasPrefix(line, intro):
			state = seekFence
		case state == seekFence && strings.HasPrefix(line, "```"):
			state = inBlock
		case state == inBlock && line == "```":
			return strings.Join(block, "\n") + "\n"
		case state == inBlock:
			block = append(block, line)
		}
	}
	t.Fatalf("%s: no section %q with a code block after a line starting %q (stopped at step %d): the page changed shape",
		page, heading, intro, state)
	return ""
}

// substitute makes each replacement of subs in conf in turn, failing if
// the text one replaces is not there: the block it was written for has
// changed, and the test with it.
func substitute(t *testing.T, conf string, subs [][2]string) string {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(conf, s[0]) {
			t.Fatalf("docs/cluster.md's configuration has no %q any more:\n%s", s[0], conf)
		}
		conf = strings.ReplaceAll(conf, s[0], s[1])
	}
	if strings.Contains(conf, "…") {
		t.Fatalf("docs/cluster.md's configuration has an elision the test does not fill in:\n%s", conf)
	}
	return conf
}

// routeCert issues, from the CA devtls made in dir, a certificate for
// 127.0.0.1 that serves both ends of a route: a server dialling a route
// presents it as a client certificate, which the other verifies (verify:
// true), and the one accepting presents it as a server's.
func routeCert(t *testing.T, f devtls.Files, certFile, keyFile string) {
	t.Helper()
	pemKey, err := os.ReadFile(f.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemKey)
	if block == nil {
		t.Fatalf("%s: no PEM", f.CAKey)
	}
	caKey, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "herald route"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.CACert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for file, b := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(file, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// routeTLSLog is a nats-server logger (with debug on) that records, by
// route connection id, the TLS version each route's handshake agreed,
// and hands on each route TLS handshake that failed, and the error that
// stopped the server (a port taken) if one did.
type routeTLSLog struct {
	mu      sync.Mutex
	version map[uint64]string
	failed  chan string
	fatal   chan string
}

func newRouteTLSLog() *routeTLSLog {
	return &routeTLSLog{version: map[uint64]string{}, failed: make(chan string, 16), fatal: make(chan string, 1)}
}

// The server logs "<addr> - rid:<n> - TLS version 1.3, cipher suite …"
// once a route's handshake completes, before the route is registered.
var routeTLSVersion = regexp.MustCompile(`rid:(\d+) - TLS version ([^,]+),`)

func (l *routeTLSLog) Debugf(format string, v ...any) {
	if m := routeTLSVersion.FindStringSubmatch(fmt.Sprintf(format, v...)); m != nil {
		rid, _ := strconv.ParseUint(m[1], 10, 64)
		l.mu.Lock()
		l.version[rid] = m[2]
		l.mu.Unlock()
	}
}

func (l *routeTLSLog) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.Contains(msg, "TLS route handshake error") {
		select {
		case l.failed <- msg:
		default: // enough heard; the refused server retries every second
		}
	}
}
func (*routeTLSLog) Noticef(string, ...any) {}
func (*routeTLSLog) Warnf(string, ...any)   {}
func (l *routeTLSLog) Fatalf(format string, v ...any) {
	select {
	case l.fatal <- fmt.Sprintf(format, v...):
	default:
	}
}
func (*routeTLSLog) Tracef(string, ...any) {}

// tlsVersionOf is the TLS version logged for route connection rid.
func (l *routeTLSLog) tlsVersionOf(rid uint64) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.version[rid]
}

// confServer starts a NATS server in-process from the configuration
// text conf, as `nats-server -c` would load it, logging to log; edit, if
// set, changes the options last.
func confServer(t *testing.T, conf string, log natsserver.Logger, edit func(*natsserver.Options)) *natsserver.Server {
	t.Helper()
	file := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := natsserver.ProcessConfigFile(file)
	if err != nil {
		t.Fatalf("nats-server refuses the configuration: %v\n%s", err, conf)
	}
	opts.NoLog, opts.NoSigs = true, true
	if edit != nil {
		edit(opts)
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server refuses the configuration: %v\n%s", err, conf)
	}
	ns.SetLogger(log, true, false)
	// Not ReadyForConnections: a clustered JetStream server takes clients
	// once it has peers, and the refused one never will.
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// The server configuration docs/cluster.md gives under "Securing NATS",
// made into three servers on this machine by the substitutions below,
// is one nats-server loads; its servers route to each other over TLS,
// each verifying the other's certificate; a server with the same route
// credentials and no route TLS never routes to them; and two nodes on
// the three, over client TLS with the CA and their nkeys (what
// `--store tls://… --nats-tls-ca --nats-nkey` give a node), keep the
// store three times (R3) and deliver a notification posted to one node
// for a device held by the other, once.
func TestClusterDocsSecureNATSConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-server NATS cluster")
	}
	block := docBlock(t, filepath.Join("..", "docs", "cluster.md"), "## Securing NATS", "A server's configuration, beyond the example's")

	// The permissions and node keys are the example's: run.sh's
	// permissions() writes the publish list the block elides.
	example := exampleConfig(t)
	conf1, err := os.ReadFile(filepath.Join(example, "nats1.conf"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)herald_node = \{\s*publish: \{ allow: \[\n(.*?)\n\s*\] \}\s*\n\s*(subscribe: \{[^\n]*\})`).FindSubmatch(conf1)
	if m == nil {
		t.Fatalf("no herald_node permissions in run.sh's configuration:\n%s", conf1)
	}
	publish, subscribe := string(m[1]), string(m[2])
	if !strings.Contains(block, subscribe) {
		t.Fatalf("the documented configuration does not subscribe as run.sh's (%s):\n%s", subscribe, block)
	}
	pub := func(n string) string {
		b, err := os.ReadFile(filepath.Join(example, "node"+n+".pub"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}

	// The files the block names, in one directory: devtls's loopback CA
	// and server certificate for clients; a route certificate from the
	// same CA.
	pki := t.TempDir()
	f, err := devtls.Ensure(filepath.Join(pki, "devtls"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	file := func(name string) string { return filepath.Join(pki, name) }
	for from, to := range map[string]string{f.CA: file("ca.pem"), f.Cert: file("server.pem"), f.Key: file("server-key.pem")} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	routeCert(t, f, file("route.pem"), file("route-key.pem"))

	const routePassword = "the-route-password"
	type natsPorts struct{ client, route int }
	ports := make([]natsPorts, 4)
	for i := range ports {
		ports[i] = natsPorts{freeport.Port(t), freeport.Port(t)}
	}
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	// config is the block for server i (1-based, tls1…tls4), routed to
	// servers r2 and r3 (the block's h2 and h3).
	config := func(i, r2, r3 int) string {
		subs := [][2]string{
			{"listen: 0.0.0.0:4222", "listen: " + addr(ports[i-1].client)},
			{"listen: 0.0.0.0:6222", "listen: " + addr(ports[i-1].route)},
			{"@h2:6222", "@" + addr(ports[r2-1].route)},
			{"@h3:6222", "@" + addr(ports[r3-1].route)},
			{`password: "…"`, `password: "` + routePassword + `"`},
			{"route:…@", "route:" + routePassword + "@"},
			{"store_dir: /var/lib/nats", fmt.Sprintf("store_dir: %q", t.TempDir())},
			{"publish: { allow: [ … ] }", "publish: { allow: [\n" + publish + "\n] }"},
			{"nkey: UA…", "nkey: " + pub("1")},
			{"nkey: UB…", "nkey: " + pub("2")},
		}
		for _, name := range []string{"server.pem", "server-key.pem", "route.pem", "route-key.pem", "ca.pem"} {
			subs = append(subs, [2]string{": " + name, fmt.Sprintf(": %q", file(name))})
		}
		return fmt.Sprintf("server_name: tls%d\n", i) + substitute(t, block, subs)
	}

	logs := []*routeTLSLog{newRouteTLSLog(), newRouteTLSLog(), newRouteTLSLog()}
	servers := []*natsserver.Server{
		confServer(t, config(1, 2, 3), logs[0], nil),
		confServer(t, config(2, 1, 3), logs[1], nil),
		confServer(t, config(3, 1, 2), logs[2], nil),
	}
	others := func(i int) []string {
		var names []string
		for j := range servers {
			if j != i {
				names = append(names, fmt.Sprintf("tls%d", j+1))
			}
		}
		return names
	}
	// A certificate refused is never a route: it fails the test at once,
	// saying why. (Other failed handshakes, such as one timing out on a
	// loaded machine, the server retries.)
	noFailedHandshake := func() {
		t.Helper()
		for i, ns := range servers {
			if len(logs[i].fatal) > 0 {
				t.Fatalf("%s stopped: %s", ns.Name(), <-logs[i].fatal)
			}
			for len(logs[i].failed) > 0 {
				if msg := <-logs[i].failed; strings.Contains(msg, "certificate") {
					t.Fatalf("%s: %s", ns.Name(), msg)
				}
			}
		}
	}
	testenv.Eventually(t, routeWait, "the three servers routed to each other", func() bool {
		noFailedHandshake()
		for i, ns := range servers {
			names := remoteNames(t, ns)
			slices.Sort(names)
			if !slices.Equal(slices.Compact(names), others(i)) {
				return false
			}
		}
		return true
	})
	// Every route connection of every server went through a TLS
	// handshake, each end verifying the other's certificate.
	for i, ns := range servers {
		testenv.Eventually(t, routeWait, ns.Name()+"'s routes' handshakes logged", func() bool {
			rz, err := ns.Routez(nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rz.Routes {
				if logs[i].tlsVersionOf(r.Rid) == "" {
					return false
				}
			}
			return len(rz.Routes) > 0
		})
	}
	noFailedHandshake()
	testenv.Eventually(t, routeWait, "a JetStream meta leader, every server current", func() bool {
		leader := false
		for _, ns := range servers {
			if !ns.JetStreamIsCurrent() {
				return false
			}
			leader = leader || ns.JetStreamIsLeader()
		}
		return leader
	})

	// A fourth server with the same route credentials and no route TLS:
	// tls1 and tls2, which it dials, fail the handshake it cannot make,
	// and it never routes, to them or through them.
	routeTLS := regexp.MustCompile(`(?m)^[ \t]*tls \{[^\n]*verify: true \}\n`)
	conf4 := config(4, 1, 2)
	if n := len(routeTLS.FindAllString(conf4, -1)); n != 1 {
		t.Fatalf("%d lines of route TLS (tls { … verify: true }) in the documented configuration, want 1", n)
	}
	// It listens where the system says: what is tried is its routes.
	plainLog := newRouteTLSLog()
	plain := confServer(t, routeTLS.ReplaceAllString(conf4, ""), plainLog, func(o *natsserver.Options) {
		o.Port, o.Cluster.Port = -1, -1
	})
	deadline := time.After(routeWait)
	for _, i := range []int{0, 1} {
		for heard := false; !heard; {
			select {
			case msg := <-logs[i].failed:
				// What a TLS server reads from a peer that speaks NATS
				// in the clear.
				heard = strings.Contains(msg, "first record does not look like a TLS handshake")
				t.Logf("%s: %s", servers[i].Name(), msg)
			case msg := <-plainLog.fatal:
				t.Fatalf("the server without route TLS stopped: %s", msg)
			case msg := <-logs[i].fatal:
				t.Fatalf("%s stopped: %s", servers[i].Name(), msg)
			case <-deadline:
				t.Fatalf("%s logged no failed route handshake from the server without route TLS", servers[i].Name())
			}
		}
	}
	// It hears no server's INFO (that comes after the handshake), so it
	// never registers a route: none now, nor on the others from it.
	if n := plain.NumRoutes(); n != 0 {
		t.Fatalf("the server without route TLS has %d routes", n)
	}
	for i, ns := range servers {
		names := remoteNames(t, ns)
		slices.Sort(names)
		if !slices.Equal(slices.Compact(names), others(i)) {
			t.Fatalf("%s routes to %v", ns.Name(), names)
		}
	}

	// Two nodes over client TLS, each with its nkey, R3 on the three.
	urls := fmt.Sprintf("tls://%s,tls://%s,tls://%s", addr(ports[0].client), addr(ports[1].client), addr(ports[2].client))
	rec := &refusals{Handler: testenv.Logger(t).Handler()}
	opts := natsstore.Options{URLs: urls, Replicas: 3, Logger: slog.New(rec)}
	ca := nats.RootCAs(file("ca.pem"))
	a, b := natsNode(t, "1", opts, ca, nodeKey(t, example, "1")), natsNode(t, "2", opts, ca, nodeKey(t, example, "2"))
	toastAcross(t, a, b, "routes")
	rec.mu.Lock()
	refused := slices.Clone(rec.got)
	rec.mu.Unlock()
	if len(refused) > 0 {
		t.Fatalf("NATS refused a node: %v", refused)
	}

	// The store is kept three times, by the three servers, as a node's
	// user sees it (its permissions allow a stream's INFO).
	_, js := natstest.Connect(t, urls, nats.RootCAs(file("ca.pem")), nodeKey(t, example, "1"))
	for _, name := range []string{"HERALD_QUEUE", "KV_herald_devices"} {
		st, err := js.Stream(ctxFor(t, 10*time.Second), name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		info := st.CachedInfo()
		if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("%s: %d replicas (cluster %+v), want 3 on the three servers", name, info.Config.Replicas, info.Cluster)
		}
	}
}

// nodeKey is the nats option of run.sh's nkey seed for node n in dir.
func nodeKey(t *testing.T, dir, n string) nats.Option {
	t.Helper()
	key, err := nats.NkeyOptionFromSeed(filepath.Join(dir, "node"+n+".nk"))
	if err != nil {
		t.Fatal(err)
	}
	return key
}
