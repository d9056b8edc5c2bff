package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"
	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// firefoxWait bounds each wait on Firefox (start, subscribe, a push
// event); a failsafe against hangs on a loaded machine, never a measure.
const firefoxWait = 90 * time.Second

// firefoxPage is the web app: it registers its service worker and
// subscribes with the application server key, retrying what the browser
// leaves unanswered while it is still starting, then reports
// the subscription to the test.
const firefoxPage = `<!doctype html><meta charset="utf-8"><title>push</title><script>
const key = %q;
const report = (path, body) => fetch(path, {method: "POST", body});
async function main() {
  const reg = await navigator.serviceWorker.register("/sw.js");
  await navigator.serviceWorker.ready;
  const within = (p, what) => Promise.race([p,
    new Promise((_, reject) => setTimeout(() => reject(new Error(what + " unanswered")), 5000))]);
  let sub = null;
  for (let i = 0; !sub && i < 40; i++) {
    try {
      sub = await within(reg.pushManager.getSubscription(), "getSubscription") ||
        await within(reg.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: key}), "subscribe");
    } catch (e) {
      await report("/log", "" + e);
      await new Promise(r => setTimeout(r, 1000));
    }
  }
  await report("/subscription", JSON.stringify(sub));
}
main().catch(e => report("/log", "page: " + e));
</script>`

// firefoxWorker reports each push event's plaintext.
const firefoxWorker = `self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", e => e.waitUntil(self.clients.claim()));
self.addEventListener("push", e => {
  e.waitUntil(fetch("/push", {method: "POST", body: e.data ? e.data.text() : "<no data>"}));
});`

// firefoxUserJS is the profile: push through the service on loopback over
// ws://, the permission granted, and nothing sent off the machine
// (docs/browsers.md explains each).
func firefoxUserJS(serverURL string) string {
	prefs := [][2]string{
		{"dom.push.serverURL", fmt.Sprintf("%q", serverURL)},
		{"dom.push.testing.allowInsecureServerURL", "true"},
		{"dom.push.testing.ignorePermission", "true"},
		{"permissions.default.desktop-notification", "1"},
		{"dom.push.enabled", "true"},
		{"dom.push.connection.enabled", "true"},
		{"browser.shell.checkDefaultBrowser", "false"},
		{"browser.startup.homepage_override.mstone", `"ignore"`},
		{"browser.aboutwelcome.enabled", "false"},
		{"browser.sessionstore.resume_from_crash", "false"},
		{"datareporting.policy.dataSubmissionEnabled", "false"},
		{"datareporting.healthreport.uploadEnabled", "false"},
		{"toolkit.telemetry.enabled", "false"},
		{"toolkit.telemetry.unified", "false"},
		{"app.update.auto", "false"},
		{"app.update.disabledForTesting", "true"},
		{"browser.safebrowsing.malware.enabled", "false"},
		{"browser.safebrowsing.phishing.enabled", "false"},
		{"browser.safebrowsing.downloads.enabled", "false"},
		{"network.captive-portal-service.enabled", "false"},
		{"network.connectivity-service.enabled", "false"},
		{"network.trr.mode", "5"},
		{"extensions.update.enabled", "false"},
		{"browser.newtabpage.enabled", "false"},
		// The background thumbnailer loads pages in a user context of
		// its own, where the page would subscribe a second time.
		{"browser.pagethumbnails.capturing_disabled", "true"},
	}
	if os.Getenv("HERALD_TEST_LOG") != "" {
		// The push client's own log, on Firefox's output.
		prefs = append(prefs, [2]string{"dom.push.loglevel", `"debug"`}, [2]string{"devtools.console.stdout.chrome", "true"})
	}
	var b strings.Builder
	for _, p := range prefs {
		fmt.Fprintf(&b, "user_pref(%q, %s);\n", p[0], p[1])
	}
	return b.String()
}

// webApp is the page's origin on http://localhost and what its service
// worker reports.
type webApp struct {
	url           string
	subscriptions chan webpushgo.Subscription
	pushes        chan string
}

func startWebApp(t *testing.T, vapidKey string) *webApp {
	t.Helper()
	a := &webApp{subscriptions: make(chan webpushgo.Subscription, 8), pushes: make(chan string, 16)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, firefoxPage, vapidKey)
	})
	mux.HandleFunc("GET /sw.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		io.WriteString(w, firefoxWorker)
	})
	mux.HandleFunc("POST /subscription", func(w http.ResponseWriter, r *http.Request) {
		var s webpushgo.Subscription
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&s); err != nil || s.Endpoint == "" {
			t.Logf("page reported no subscription: %v", err)
			return
		}
		a.subscriptions <- s
	})
	mux.HandleFunc("POST /push", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 8192))
		a.pushes <- string(b)
	})
	mux.HandleFunc("POST /log", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
		t.Logf("page: %s", b)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	// localhost, not 127.0.0.1: a secure context by name, as service
	// workers need, over plain http.
	a.url = fmt.Sprintf("http://localhost:%d/", ln.Addr().(*net.TCPAddr).Port)
	return a
}

// firefox is a running headless Firefox on a profile.
type firefox struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startFirefox runs Firefox headless on profile, opening url. Its whole
// process group is ended when the test ends, whatever happens.
func startFirefox(t *testing.T, bin, profile, home, url string) *firefox {
	t.Helper()
	cmd := exec.Command(bin, "--headless", "--no-remote", "--profile", profile, url)
	cmd.Env = append(os.Environ(), "HOME="+home, "MOZ_HEADLESS=1", "MOZ_REMOTE_SETTINGS_DEVTOOLS=1",
		"MOZ_CRASHREPORTER_DISABLE=1", "MOZ_DISABLE_AUTO_SAFE_MODE=1", "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting firefox: %v", err)
	}
	f := &firefox{cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(f.done)
	}()
	t.Cleanup(func() {
		f.stop(t)
		if t.Failed() {
			t.Logf("firefox output:\n%s", out.String())
		}
	})
	return f
}

// stop asks Firefox to quit (SIGTERM makes it shut down cleanly, saving
// its prefs, the uaid among them) and kills its process group if it has
// not within the bound.
func (f *firefox) stop(t *testing.T) {
	pgid := f.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(30 * time.Second):
		t.Log("firefox did not quit on SIGTERM; killing it")
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-f.done
	}
	// What it started in its group goes with it.
	syscall.Kill(-pgid, syscall.SIGKILL)
}

func receive[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(firefoxWait):
		t.Fatalf("no %s within %v", what, firefoxWait)
		panic("unreachable")
	}
}

// Firefox (Debian's firefox-esr, headless) uses Herald as its push
// service: a page on http://localhost subscribes with a VAPID key, a Go
// sender posts to the pushEndpoint, and the service worker's push event
// gets the exact plaintext. Then Firefox is closed, two messages are sent,
// and Firefox started again on the same profile gets both, once each.
func TestFirefoxPush(t *testing.T) {
	bin, err := exec.LookPath("firefox-esr")
	if err != nil {
		t.Skip("firefox-esr is not installed (apt-get install firefox-esr; .ci/run installs it)")
	}
	svc := testenv.Service(t, "", server.ServeConfig{})
	priv, pub, err := webpushgo.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	app := startWebApp(t, pub)
	home := t.TempDir()
	profile := filepath.Join(home, "profile")
	if err := os.MkdirAll(profile, 0o700); err != nil {
		t.Fatal(err)
	}
	serverURL := "ws" + strings.TrimPrefix(svc.URL(), "http") + server.BrowserPath
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(firefoxUserJS(serverURL)), 0o600); err != nil {
		t.Fatal(err)
	}

	var sub webpushgo.Subscription // as the page reported it
	send := func(plain string) {
		t.Helper()
		res, err := webpushgo.SendNotification([]byte(plain), &sub, &webpushgo.Options{
			Subscriber: "mailto:ops@example.org", VAPIDPublicKey: pub, VAPIDPrivateKey: priv, TTL: 3600})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("posting %q: %d %s", plain, res.StatusCode, body)
		}
	}

	ff := startFirefox(t, bin, profile, home, app.url)
	sub = receive(t, app.subscriptions, "subscription")
	if !strings.HasPrefix(sub.Endpoint, svc.URL()) {
		t.Fatalf("pushEndpoint %q is not the service's", sub.Endpoint)
	}
	plain := "hello from Herald, " + time.Now().Format(time.RFC3339Nano)
	send(plain)
	if got := receive(t, app.pushes, "push event"); got != plain {
		t.Fatalf("service worker got %q, want %q", got, plain)
	}

	ff.stop(t)
	want := []string{"sent while away 1", "sent while away 2"}
	for _, m := range want {
		send(m)
	}
	startFirefox(t, bin, profile, home, app.url)
	got := []string{receive(t, app.pushes, "push event after restart"), receive(t, app.pushes, "push event after restart")}
	// A marker sent now arrives after anything sent twice would have: the
	// two came once each.
	send("marker")
	for {
		m := receive(t, app.pushes, "marker")
		if m == "marker" {
			break
		}
		got = append(got, m)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("after the restart the service worker got %q, want %q once each", got, want)
	}
	if s := receive(t, app.subscriptions, "subscription after restart"); s.Endpoint != sub.Endpoint {
		t.Fatalf("the subscription changed across the restart: %s, then %s", sub.Endpoint, s.Endpoint)
	}
}

// linkTap stands between Firefox and the service on the browser's
// websocket, passing frames both ways; while dropping is set it drops
// Firefox's acks, and cut ends the current connection as a network would.
type linkTap struct {
	t        *testing.T
	service  string // the service's ws:// browser URL
	url      string // where Firefox connects
	dropping atomic.Bool
	frames   chan tapFrame
	mu       sync.Mutex
	conns    []*websocket.Conn
}

// tapFrame is a frame that crossed the tap, and whether it was dropped.
type tapFrame struct {
	fromBrowser, dropped bool
	msg                  struct {
		MessageType string `json:"messageType"`
		Version     string `json:"version"`
		Updates     []struct {
			Version string `json:"version"`
			Code    int    `json:"code"`
		} `json:"updates"`
	}
}

func startTap(t *testing.T, service string) *linkTap {
	t.Helper()
	tap := &linkTap{t: t, service: service, frames: make(chan tapFrame, 256)}
	up := websocket.Upgrader{Subprotocols: []string{"push-notification"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		in, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		out, _, err := websocket.DefaultDialer.Dial(tap.service, nil)
		if err != nil {
			in.Close()
			return
		}
		tap.mu.Lock()
		tap.conns = append(tap.conns, in, out)
		tap.mu.Unlock()
		go tap.pump(out, in, false)
		tap.pump(in, out, true)
	}))
	t.Cleanup(func() {
		tap.cut()
		srv.Close()
	})
	tap.url = "ws" + strings.TrimPrefix(srv.URL, "http") + server.BrowserPath
	return tap
}

func (tap *linkTap) pump(from, to *websocket.Conn, fromBrowser bool) {
	defer from.Close()
	defer to.Close()
	for {
		typ, data, err := from.ReadMessage()
		if err != nil {
			return
		}
		f := tapFrame{fromBrowser: fromBrowser}
		json.Unmarshal(data, &f.msg)
		f.dropped = fromBrowser && f.msg.MessageType == "ack" && tap.dropping.Load()
		select {
		case tap.frames <- f:
		default:
		}
		if f.dropped {
			continue
		}
		to.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := to.WriteMessage(typ, data); err != nil {
			return
		}
	}
}

// cut ends every connection through the tap.
func (tap *linkTap) cut() {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	for _, c := range tap.conns {
		c.Close()
	}
	tap.conns = nil
}

// await returns the first frame crossing the tap for which match holds.
func (tap *linkTap) await(what string, match func(tapFrame) bool) tapFrame {
	tap.t.Helper()
	timeout := time.After(firefoxWait)
	for {
		select {
		case f := <-tap.frames:
			if match(f) {
				return f
			}
		case <-timeout:
			tap.t.Fatalf("no %s within %v", what, firefoxWait)
		}
	}
}

// What Firefox does with a message it is sent again under the same
// version, which is what the service does with one written but never
// acknowledged: it acknowledges it with code 102 and does not deliver it
// again.
func TestFirefoxRepeatedVersion(t *testing.T) {
	bin, err := exec.LookPath("firefox-esr")
	if err != nil {
		t.Skip("firefox-esr is not installed (apt-get install firefox-esr; .ci/run installs it)")
	}
	svc := testenv.Service(t, "", server.ServeConfig{})
	tap := startTap(t, "ws"+strings.TrimPrefix(svc.URL(), "http")+server.BrowserPath)
	priv, pub, err := webpushgo.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	app := startWebApp(t, pub)
	home := t.TempDir()
	profile := filepath.Join(home, "profile")
	if err := os.MkdirAll(profile, 0o700); err != nil {
		t.Fatal(err)
	}
	// Reconnect soon after the cut.
	userJS := firefoxUserJS(tap.url) + "user_pref(\"dom.push.retryBaseInterval\", 500);\n"
	if err := os.WriteFile(filepath.Join(profile, "user.js"), []byte(userJS), 0o600); err != nil {
		t.Fatal(err)
	}
	startFirefox(t, bin, profile, home, app.url)
	sub := receive(t, app.subscriptions, "subscription")
	send := func(plain string) {
		t.Helper()
		res, err := webpushgo.SendNotification([]byte(plain), &sub, &webpushgo.Options{
			Subscriber: "mailto:ops@example.org", VAPIDPublicKey: pub, VAPIDPrivateKey: priv, TTL: 3600})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated {
			t.Fatalf("posting %q: %d", plain, res.StatusCode)
		}
	}

	tap.dropping.Store(true)
	send("once")
	sent := tap.await("notification", func(f tapFrame) bool { return !f.fromBrowser && f.msg.MessageType == "notification" })
	if got := receive(t, app.pushes, "push event"); got != "once" {
		t.Fatalf("service worker got %q", got)
	}
	tap.await("dropped ack", func(f tapFrame) bool { return f.dropped })
	tap.dropping.Store(false)
	tap.cut()

	again := tap.await("the notification sent again", func(f tapFrame) bool {
		return !f.fromBrowser && f.msg.MessageType == "notification"
	})
	if again.msg.Version != sent.msg.Version {
		t.Fatalf("sent again as version %q, first as %q", again.msg.Version, sent.msg.Version)
	}
	ack := tap.await("ack of the repeat", func(f tapFrame) bool { return f.fromBrowser && f.msg.MessageType == "ack" })
	if len(ack.msg.Updates) != 1 || ack.msg.Updates[0].Version != sent.msg.Version {
		t.Fatalf("ack %+v", ack.msg)
	}
	// 102 is Firefox's "not delivered" (a version it has seen on the
	// subscription); 100 would mean it handed the message to the service
	// worker a second time. Firefox 153 ESR answers 102 every time.
	if code := ack.msg.Updates[0].Code; code != 102 {
		t.Fatalf("Firefox acknowledged the repeated version %s with code %d, want 102 (a version it has seen): "+
			"it may have delivered the message twice, which docs/browsers.md says it does not", sent.msg.Version, code)
	}
	send("marker")
	if got := receive(t, app.pushes, "marker"); got != "marker" {
		t.Fatalf("the repeated version was delivered again: the service worker got %q before the marker", got)
	}
}
