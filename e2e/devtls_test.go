package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

var devCALine = regexp.MustCompile(`^(?:herald: )?development CA (\S+) \((made now|kept from an earlier start)`)

// waitDevCA waits for the line that names the development CA and returns
// its path and whether it was made by this start.
func (p *proc) waitDevCA(t *testing.T) (string, bool) {
	t.Helper()
	var m []string
	testenv.Eventually(t, 60*time.Second, "the development CA from "+p.name, func() bool {
		for m == nil {
			l, ok := p.stdout.line(p.next)
			if !ok {
				return false
			}
			p.next++
			m = devCALine.FindStringSubmatch(l)
		}
		return true
	})
	return m[1], m[2] == "made now"
}

// TestDevTLSService runs `heraldsvc serve --tls-self-signed` and a phone
// linked to it over wss, as separate processes. Web Push senders reach the
// https channel URI trusting only the CA the service printed: webpush-go,
// and the npm web-push command line exactly as docs/webpush.md types it
// (NODE_EXTRA_CA_CERTS); the app decrypts what each sent. A client with the
// system's roots is refused; a tile to a channel not bound to tiles makes
// `heraldsvc send` say why; a restart keeps the CA.
func TestDevTLSService(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	herald, heraldsvc := buildBinaries(t, t.TempDir())
	dir := t.TempDir()
	env := childEnv()
	tlsAddr := freeLoopbackAddr(t)
	serve := func() (*proc, string, bool) {
		svc := startProc(t, env, heraldsvc, "serve", "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "heraldsvc.db"),
			"--tls-self-signed", "--tls-listen", tlsAddr)
		first := svc.readLine(t)
		if m := svcListening.FindStringSubmatch(first); m == nil || m[2] != "https://"+tlsAddr {
			t.Fatalf("heraldsvc serve printed %q first, want channel URIs under https://%s", first, tlsAddr)
		}
		ca, made := svc.waitDevCA(t)
		return svc, ca, made
	}
	svc, ca, made := serve()
	if !made || ca != filepath.Join(dir, "heraldsvc-tls", "ca.pem") {
		t.Fatalf("the first start's CA %s (made %v), want a new one beside the database", ca, made)
	}
	client := caClient(t, ca)

	socket := testenv.SocketPath(t)
	startProc(t, env, herald, "run", "--service", "https://"+tlsAddr, "--service-ca", ca, "--data", filepath.Join(dir, "phone"),
		"--socket", socket, "--config", daemonConfig(t))
	waitLinkUp(t, socket)
	c := app.NewClient(socket)
	ctx := ctxFor(t, 120*time.Second)
	ch, err := c.Open(ctx, "chat", app.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ch.URI, "https://"+tlsAddr+"/") {
		t.Fatalf("channel URI %q, want https://%s/...", ch.URI, tlsAddr)
	}
	stream, err := c.Listen(ctx, "chat", app.ListenOptions{Foreground: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	nextEvent(t, stream, app.EventStatus)
	sub := testenv.NewSubscriber(t)
	received := func(want string) {
		t.Helper()
		e := nextEvent(t, stream, app.EventWebPush)
		if got, err := sub.Decrypt(e.Body); err != nil || string(got) != want {
			t.Fatalf("decrypted %q, %v; want %q", got, err, want)
		}
	}

	t.Run("webpush-go", func(t *testing.T) {
		priv, pub, err := webpushgo.GenerateVAPIDKeys()
		if err != nil {
			t.Fatal(err)
		}
		res, err := webpushgo.SendNotification([]byte("from Go"), &webpushgo.Subscription{Endpoint: ch.URI,
			Keys: webpushgo.Keys{P256dh: sub.P256dh(), Auth: sub.Auth()}},
			&webpushgo.Options{HTTPClient: client, Subscriber: "mailto:ops@example.org", VAPIDPublicKey: pub, VAPIDPrivateKey: priv, TTL: 60})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusCreated || !strings.HasPrefix(res.Header.Get("Location"), ch.URI+server.MessagesSegment) {
			t.Fatalf("answer %d %v", res.StatusCode, res.Header)
		}
		received("from Go")
	})

	t.Run("npm web-push command", func(t *testing.T) {
		webPushCLI(t, ch.URI, sub, ca, "from the npm command")
		received("from the npm command")
	})

	t.Run("untrusted", func(t *testing.T) {
		// The system's roots alone do not know the development CA.
		req, _ := http.NewRequest(http.MethodPost, ch.URI, strings.NewReader("x"))
		req.Header.Set("TTL", "60")
		_, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Fatalf("a client without the CA: %v, want an unknown authority", err)
		}
	})

	t.Run("suppressed tile says why", func(t *testing.T) {
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, heraldsvc, "send", "tile", ch.URI, "--title", "Inbox", "--ca", ca)
		cmd.Env, cmd.Stdout = env, &out
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		var ee *exec.ExitError
		if err := cmd.Run(); !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("heraldsvc send tile to a channel not bound to tiles: %v, want exit 1", err)
		}
		if !strings.Contains(out.String(), `"notification":"Suppressed"`) || !strings.Contains(stderr.String(), "not bound to tile notifications") ||
			!strings.Contains(stderr.String(), "herald open APP --tile") {
			t.Fatalf("stdout %q, stderr %q: want Suppressed and how to bind", out.String(), stderr.String())
		}
	})

	// A restart keeps the CA (trusted clients go on trusting) and the
	// phone comes back over wss.
	before, _ := os.ReadFile(ca)
	svc.stop(t)
	_, ca2, made := serve()
	if after, _ := os.ReadFile(ca2); made || ca2 != ca || !bytes.Equal(after, before) {
		t.Fatalf("after a restart: CA %s, made %v, same bytes %v", ca2, made, bytes.Equal(after, before))
	}
	waitLinkUp(t, socket)
	res, err := client.Do(webPushRequest(t, ch.URI))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("after the restart: %d", res.StatusCode)
	}
}

// TestDevTLSEmbedded runs `herald run --tls`: the embedded service's
// channel URIs are https, a toast sent trusting only the printed CA is
// shown, and the phone's own link uses that CA too.
func TestDevTLSEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	herald, heraldsvc := buildBinaries(t, t.TempDir())
	socket := testenv.SocketPath(t)
	env := childEnv("HERALD_SOCKET=" + socket)
	listen, data := freeLoopbackAddr(t), t.TempDir()
	d := startProc(t, env, herald, "run", "--tls", "--listen", listen, "--data", data, "--socket", socket, "--config", daemonConfig(t))
	if first := d.readLine(t); first != "herald: notification service https://"+listen {
		t.Fatalf("herald run --tls printed %q first", first)
	}
	ca, made := d.waitDevCA(t)
	if !made || ca != filepath.Join(data, "tls", "ca.pem") {
		t.Fatalf("CA %s (made %v), want a new one in the data directory", ca, made)
	}
	if st, err := os.Stat(filepath.Join(data, "tls", "ca-key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the CA key: %v, %v", st, err)
	}
	waitLinkUp(t, socket)
	ctx := ctxFor(t, 30*time.Second)
	var ch openOutput
	cliJSON(t, &ch, env, herald, "open", "demo", "--toast", "--json")
	if !strings.HasPrefix(ch.URI, "https://"+listen+"/") {
		t.Fatalf("channel URI %q", ch.URI)
	}
	mustSend(t, env, heraldsvc, "toast", ch.URI, "--text1", "over", "--text2", "https", "--ca", ca)
	testenv.Eventually(t, 15*time.Second, "toast shown", func() bool {
		var toasts []toastOutput
		cliJSON(t, &toasts, env, herald, "toasts", "--json")
		return len(toasts) == 1 && toasts[0].Text1 == "over"
	})
	// The phone's link went to the https URL, so over wss trusting that CA.
	if st, err := app.NewClient(socket).Status(ctx); err != nil || st.Service != "https://"+listen || !st.Connected {
		t.Fatalf("the phone's link: %+v, %v; want connected to https://%s", st, err, listen)
	}
	d.stop(t)

	// The next start keeps the CA.
	d = startProc(t, env, herald, "run", "--tls", "--listen", listen, "--data", data, "--socket", socket, "--config", daemonConfig(t))
	if _, made := d.waitDevCA(t); made {
		t.Fatal("a restart made a new CA")
	}
	waitLinkUp(t, socket)
	d.stop(t)
}

// webPushCLI runs the npm web-push command line (e2e/testdata/webpush-node)
// as docs/webpush.md shows it, trusting the CA through NODE_EXTRA_CA_CERTS.
func webPushCLI(t *testing.T, endpoint string, sub *testenv.Subscriber, ca, payload string) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed")
	}
	dir, _ := filepath.Abs(filepath.Join("testdata", "webpush-node"))
	npmCI(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "node_modules", ".bin", "web-push"), "send-notification",
		"--endpoint="+endpoint, "--key="+sub.P256dh(), "--auth="+sub.Auth(), "--payload="+payload, "--ttl=60")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+ca)
	out, err := cmd.CombinedOutput()
	// The command exits 0 whatever happened; what it prints says.
	if err != nil || !strings.HasPrefix(string(out), "Push message sent.") {
		t.Fatalf("web-push send-notification: %v\n%s", err, out)
	}
}

// webPushRequest is an unsigned Web Push POST with an opaque body.
func webPushRequest(t *testing.T, uri string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, uri, strings.NewReader("ciphertext"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("TTL", "60")
	req.Header.Set("Content-Encoding", "aes128gcm")
	return req
}
