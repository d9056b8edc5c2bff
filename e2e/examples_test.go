package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/internal/freeport"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
)

// freeLoopbackAddr returns a loopback address nothing listens on, for a
// service that must come back on the same port after a restart (its
// channel URIs carry it).
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	return freeport.Addr(t)
}

// waitLine waits for the process's next line equal to want (or, when want
// ends in "*", starting with the rest), skipping others, and returns it.
func (p *proc) waitLine(t *testing.T, want string) string {
	t.Helper()
	prefix, isPrefix := strings.CutSuffix(want, "*")
	var got string
	testenv.Eventually(t, 60*time.Second, "the line "+want+" from "+p.name, func() bool {
		for {
			l, ok := p.stdout.line(p.next)
			if !ok {
				return false
			}
			p.next++
			if l == want || (isPrefix && strings.HasPrefix(l, prefix)) {
				got = l
				return true
			}
		}
	})
	return got
}

// TestExampleApps runs the Python and Node example apps against a real
// daemon (`herald run --tls`, its embedded service on https with the
// development CA): each opens its channel for toast and tile and prints
// the URI and its Web Push keys, gets a raw notification, a foreground
// toast, a tile update and a Web Push message (decrypted by the app with
// its language's library), keeps going across a daemon restart, and prints
// each exactly once. Senders trust only the CA the daemon printed. A Web
// Push body that is not for the app's keys is reported, not fatal.
func TestExampleApps(t *testing.T) {
	examples := []struct {
		name   string
		interp string
		script string
		check  []string // an interpreter command that fails without the app's library
		deps   func(t *testing.T)
	}{
		{"python", "python3", "../examples/python-app/herald_app.py", []string{"-c", "import cryptography"}, nil},
		{"node", "node", "../examples/node-app/herald-app.js", nil, func(t *testing.T) { npmCI(t, "../examples/node-app") }},
	}
	var herald string
	binDir := t.TempDir()
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			interp, err := exec.LookPath(ex.interp)
			if err != nil {
				t.Skipf("%s is not installed: %v", ex.interp, err)
			}
			if ex.check != nil {
				if out, err := exec.Command(interp, ex.check...).CombinedOutput(); err != nil {
					t.Skipf("the app's library is missing (.ci/run installs it): %v\n%s", err, out)
				}
			}
			if ex.deps != nil {
				ex.deps(t)
			}
			if herald == "" {
				herald, _ = buildBinaries(t, binDir)
			}
			socket := testenv.SocketPath(t)
			env := childEnv("HERALD_SOCKET="+socket, "XDG_STATE_HOME="+t.TempDir())
			data, cfg, listen := t.TempDir(), daemonConfig(t), freeLoopbackAddr(t)
			var client *http.Client
			runDaemon := func() *proc {
				d := startProc(t, env, herald, "run", "--tls", "--listen", listen, "--data", data, "--socket", socket, "--config", cfg)
				ca, _ := d.waitDevCA(t)
				if client == nil {
					client = caClient(t, ca)
				}
				waitLinkUp(t, socket)
				return d
			}
			d := runDaemon()

			appID := ex.name + "-demo"
			a := startProc(t, env, interp, ex.script, appID)
			uri := strings.TrimPrefix(a.waitLine(t, "uri *"), "uri ")
			if !strings.HasPrefix(uri, "https://"+listen+"/") {
				t.Fatalf("the app printed the URI %q, want one under https://%s/", uri, listen)
			}
			keys := strings.Fields(a.waitLine(t, "webpush-keys *"))
			if len(keys) != 3 || !strings.HasPrefix(keys[1], "p256dh=") || !strings.HasPrefix(keys[2], "auth=") {
				t.Fatalf("the app printed its keys as %q", keys)
			}
			sub := &webpushgo.Subscription{Endpoint: uri, Keys: webpushgo.Keys{P256dh: strings.TrimPrefix(keys[1], "p256dh="), Auth: strings.TrimPrefix(keys[2], "auth=")}}
			vapidPriv, vapidPub, err := webpushgo.GenerateVAPIDKeys()
			if err != nil {
				t.Fatal(err)
			}
			a.waitLine(t, "connection up")
			mpnsSend := func(m mpns.Message, id string) {
				t.Helper()
				res, err := (&mpns.Client{HTTP: client}).Send(ctxFor(t, 30*time.Second), uri, m, mpns.SendOptions{MessageID: id})
				if err != nil || !res.Received() {
					t.Fatalf("sending %s: %+v, %v", id, res, err)
				}
			}
			var wants []string
			send := func(round string) {
				t.Helper()
				raw := "raw-" + round
				mpnsSend(mpns.Raw("héllo "+round), raw)
				wants = append(wants, a.waitLine(t, "raw "+raw+" héllo "+round))
				mpnsSend(&mpns.Toast{Text1: "Hello", Text2: "toast-" + round}, "toast-"+round)
				wants = append(wants, a.waitLine(t, "toast Hello | toast-"+round+" | "))
				mpnsSend(&mpns.Tile{Fields: []mpns.Field{{Name: "Title", Value: "Inbox " + round}, {Name: "Count", Value: round}}}, "tile-"+round)
				wants = append(wants, a.waitLine(t, "tile primary - Count="+round+" Title=Inbox "+round))
				plain := "wp é " + round
				res, err := webpushgo.SendNotification([]byte(plain), sub, &webpushgo.Options{HTTPClient: client,
					Subscriber: "mailto:ops@example.org", VAPIDPublicKey: vapidPub, VAPIDPrivateKey: vapidPriv, TTL: 600})
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				loc := res.Header.Get("Location")
				if res.StatusCode != http.StatusCreated || loc == "" {
					t.Fatalf("Web Push: %d %v", res.StatusCode, res.Header)
				}
				wants = append(wants, a.waitLine(t, "webpush "+path.Base(loc)+" "+plain))
			}
			send("1")

			// Anyone may post to the URI: a body that is not for the app's
			// keys is reported and the app goes on.
			req, _ := http.NewRequest(http.MethodPost, uri, strings.NewReader(strings.Repeat("x", 200)))
			req.Header.Set("TTL", "60")
			req.Header.Set("Content-Encoding", "aes128gcm")
			res, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusCreated {
				t.Fatalf("garbage Web Push: %d", res.StatusCode)
			}
			a.waitLine(t, "webpush "+path.Base(res.Header.Get("Location"))+" undecryptable: *")

			d.stop(t)
			d = runDaemon()
			// The app is back on its stream once it hears the link is up.
			a.waitLine(t, "connection up")
			send("2")
			d.stop(t)

			a.cmd.Process.Kill()
			<-a.done
			lines := strings.Split(strings.TrimSpace(a.stdout.String()), "\n")
			for _, want := range wants {
				if n := countOf(lines, want); n != 1 {
					t.Errorf("the app printed %q %d times, want once:\n%s", want, n, a.stdout)
				}
			}
			if n := countOf(lines, "uri "+uri); n != 1 || slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "uri ") && l != "uri "+uri }) >= 0 {
				t.Errorf("the URI changed or was printed again across the restart:\n%s", a.stdout)
			}
		})
	}
}

// caClient is an https client that trusts only the CA in caFile.
func caClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatalf("no certificate in %s", caFile)
	}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
}

// npmCI installs the npm dependencies of dir from its lockfile unless they
// are there (.ci/run installs them); it skips the test without npm.
func npmCI(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skipf("npm is not installed to install %s's dependencies: %v", dir, err)
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

func countOf(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}

// TestEmulatorScript runs examples/emulator-script against a real
// `herald emulate --ui`: the script drives phone-0002 through the start
// screen's HTTP API only, and the phone's own local API then shows what it
// did, while phone-0001 is untouched.
func TestEmulatorScript(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skipf("no sh: %v", err)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skipf("the script needs curl: %v", err)
	}
	herald, _ := buildBinaries(t, t.TempDir())
	socket := testenv.SocketPath(t)
	uiAddr := freeLoopbackAddr(t)
	env := childEnv("HERALD_SOCKET=" + socket)
	emu := startProc(t, env, herald, "emulate", "--devices", "2", "--listen", "127.0.0.1:0", "--ui", uiAddr,
		"--data", t.TempDir(), "--socket", socket)
	// The start screen's address with its key, as `herald ui-url` gets it.
	var uiURL string
	testenv.Eventually(t, 60*time.Second, "the start screen's address", func() bool {
		uiURL, err = app.NewClient(socket).StartScreen(context.Background())
		return err == nil
	})
	_, key, _ := strings.Cut(uiURL, "#key=")
	testenv.Eventually(t, 60*time.Second, "both phones connected on the start screen", func() bool {
		var phones []struct{ Connected bool }
		req, _ := http.NewRequest(http.MethodGet, "http://"+uiAddr+"/api/phones", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := senderClient.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&phones) == nil && len(phones) == 2 && phones[0].Connected && phones[1].Connected
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sh, "../examples/emulator-script/drive-phone.sh", "phone-0002", "scripted")
	cmd.Env = childEnv("HERALD_UI_URL=" + uiURL)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the script failed: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, want := range []string{"toast Received Connected", "toast at low power Suppressed *", "toast while away Received TempDisconnected",
		"raw taken by the app", "secondary tile updated", "ok"} {
		prefix, isPrefix := strings.CutSuffix(want, "*")
		if !slices.ContainsFunc(lines, func(l string) bool { return l == want || isPrefix && strings.HasPrefix(l, prefix) }) {
			t.Errorf("the script did not print %q:\n%s", want, out)
		}
	}

	// What the phone itself says, through its local API.
	c := app.NewClient(socket).WithDevice("phone-0002")
	var toasts []app.Toast
	seen := -1
	testenv.Eventually(t, 60*time.Second, "the toast held while away delivered", func() bool {
		toasts, err = c.Toasts(context.Background(), "scripted")
		if len(toasts) != seen {
			seen = len(toasts)
			t.Logf("phone-0002's toasts: %+v (%v)", toasts, err)
		}
		return err == nil && len(toasts) >= 2
	})
	if len(toasts) != 2 || toasts[0].Text1 != "Hello" || toasts[1].Text1 != "Later" || toasts[1].SentAt.IsZero() || !toasts[1].SentAt.Before(toasts[1].ReceivedAt) {
		t.Fatalf("phone-0002's toasts %+v, want Hello then Later (sent while away, delivered after)", toasts)
	}
	tiles, err := c.Tiles(context.Background(), "scripted")
	if err != nil || len(tiles) != 1 || tiles[0].TileID != "/Item.xaml?id=1" || tiles[0].Fields["Count"] != "3" {
		t.Fatalf("phone-0002's tiles %+v (%v)", tiles, err)
	}
	if chans, err := app.NewClient(socket).WithDevice("phone-0001").Channels(context.Background(), ""); err != nil || len(chans) != 0 {
		t.Fatalf("phone-0001 was touched: %+v (%v)", chans, err)
	}
	emu.stop(t)
}
