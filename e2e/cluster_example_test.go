package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/natstest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/natsstore"
)

// exampleNATS writes the NATS configuration and node keys of
// examples/cluster/run.sh and starts one server from it, on ports of its
// own (the example's are fixed) and without its routes: what is under
// test is who may connect and what each may do (the routes' credentials
// are TestClusterExampleRoutesNeedCredentials').
func exampleNATS(t *testing.T) (url, dir string) {
	t.Helper()
	dir = exampleConfig(t)
	opts, err := natsserver.ProcessConfigFile(filepath.Join(dir, "nats1.conf"))
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.StoreDir = "127.0.0.1", -1, t.TempDir()
	opts.Cluster, opts.Routes = natsserver.ClusterOpts{}, nil
	opts.NoLog, opts.NoSigs = true, true
	ns := natstest.Start(t, opts)
	return ns.ClientURL(), dir
}

// exampleConfig writes the NATS configurations and keys of
// examples/cluster/run.sh into a new directory, and checks that only
// their owner may read them.
func exampleConfig(t *testing.T) (dir string) {
	t.Helper()
	for _, tool := range []string{"sh", "go"} { // the script builds nk
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: %v", tool, err)
		}
	}
	dir = t.TempDir()
	cmd := exec.Command("sh", filepath.Join("..", "examples", "cluster", "run.sh"), "--config-only", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run.sh --config-only: %v\n%s", err, out)
	}
	for _, f := range []string{"nats1.conf", "node1.nk", "route.password"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: readable by others", f, fi.Mode().Perm())
		}
	}
	return dir
}

// The example's NATS refuses anyone without a node's key: the attack of
// a local user reading every device's key from the buckets, or
// publishing a notification into the queue stream.
func TestClusterExampleNATSRefusesStrangers(t *testing.T) {
	url, dir := exampleNATS(t)
	// Another run's node key: well formed, and unknown to this one.
	other := t.TempDir()
	if out, err := exec.Command("sh", filepath.Join("..", "examples", "cluster", "run.sh"), "--config-only", other).CombinedOutput(); err != nil {
		t.Fatalf("run.sh --config-only: %v\n%s", err, out)
	}
	strangerKey, err := nats.NkeyOptionFromSeed(filepath.Join(other, "node1.nk"))
	if err != nil {
		t.Fatal(err)
	}
	for name, opts := range map[string][]nats.Option{
		"no credentials":  nil,
		"a user/password": {nats.UserInfo("herald", "herald")},
		"a token":         {nats.Token("herald")},
		"an unknown nkey": {strangerKey},
	} {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			nc.Close()
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: %v; want an authorization violation", name, err)
		}
	}

	// A node's own key reaches Herald's subjects only: not every subject
	// of the account, not a stream's deletion.
	nodeKey, err := nats.NkeyOptionFromSeed(filepath.Join(dir, "node1.nk"))
	if err != nil {
		t.Fatal(err)
	}
	violations := make(chan error, 8)
	nc, err := nats.Connect(url, nodeKey, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			violations <- err
		}
	}))
	if err != nil {
		t.Fatalf("the node's key: %v", err)
	}
	defer nc.Close()
	for what, try := range map[string]func() error{
		"subscribe to everything": func() error { _, err := nc.SubscribeSync(">"); return err },
		"delete the queue stream": func() error { return nc.Publish("$JS.API.STREAM.DELETE.HERALD_QUEUE", nil) },
		"another service's bucket": func() error {
			return nc.Publish("$KV.other_devices.d.x", []byte("{}"))
		},
	} {
		if err := try(); err != nil {
			t.Fatal(err)
		}
		nc.Flush()
		select {
		case <-violations:
		case <-time.After(10 * time.Second): // a failsafe: the server answers at once
			t.Errorf("%s: allowed to the node's key", what)
		}
	}
}

// refusals records what the store logs about NATS refusing a subject to
// its user: the example's permissions must allow all that Herald does.
type refusals struct {
	slog.Handler
	mu  sync.Mutex
	got []string
}

func (r *refusals) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn && strings.Contains(rec.Message, "refused") {
		r.mu.Lock()
		r.got = append(r.got, rec.Message)
		r.mu.Unlock()
	}
	return r.Handler.Handle(ctx, rec)
}

func (r *refusals) WithAttrs(as []slog.Attr) slog.Handler {
	return &refusals{Handler: r.Handler.WithAttrs(as)}
}

// natsNode opens node n's store with opts and the NATS options, and
// serves it with the store as its presence and quota.
func natsNode(t *testing.T, n string, opts natsstore.Options, nopts ...nats.Option) *server.Service {
	t.Helper()
	opts.NATS = append(opts.NATS, nopts...)
	st, err := natsstore.Open(ctxFor(t, readyWait), opts)
	if err != nil {
		t.Fatalf("node %s: %v", n, err)
	}
	return testenv.Service(t, "", server.ServeConfig{Store: st, Server: server.Config{Logger: opts.Logger, Presence: st, Quota: st}})
}

// toastAcross enrols a phone on holder, opens a toast channel, posts toast
// m1 to its URI on poster, and waits until the phone has shown it once.
func toastAcross(t *testing.T, holder, poster *server.Service, text string) app.Channel {
	t.Helper()
	d := testenv.StartDaemon(t, daemon.Config{Service: holder.URL()})
	yes := true
	ch, err := d.Client.Open(ctxFor(t, 30*time.Second), "demo", app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatal(err)
	}
	mustReceive(t, on(poster, ch.URI), mpnsRequest{target: "toast", class: "2", messageID: "m1", body: toastXML(text, "m1")})
	waitToastsOnce(t, d.Client, map[string]bool{"m1": true}, nil)
	return ch
}

// Two nodes with the example's keys and permissions do all a cluster
// does: enrol, register, take notifications on one node for a device on
// the other, count quotas, remember outcomes, hold devices.
func TestClusterExamplePermissionsSuffice(t *testing.T) {
	url, dir := exampleNATS(t)
	rec := &refusals{Handler: testenv.Logger(t).Handler()}
	log := slog.New(rec)
	opts := natsstore.Options{URLs: url, Logger: log}
	a, b := natsNode(t, "1", opts, nodeKey(t, dir, "1")), natsNode(t, "2", opts, nodeKey(t, dir, "2"))
	ch := toastAcross(t, b, a, "example")
	testenv.Eventually(t, 30*time.Second, "the message delivered, on the other node", func() bool {
		resp, err := http.Get(server.MessageURI(on(a, ch.URI), "m1"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st struct{ Status string }
		json.NewDecoder(resp.Body).Decode(&st)
		return st.Status == "delivered"
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) > 0 {
		t.Fatalf("NATS refused the node: %v", rec.got)
	}
}
