package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	webpushgo "github.com/SherClockHolmes/webpush-go"
	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/freeport"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

// webPushService starts a service whose channel URIs are https on its TLS
// listener (which asks no client certificate), as Web Push senders need.
func webPushService(t *testing.T) (*server.Service, testenv.PKI) {
	t.Helper()
	pki := testenv.NewPKI(t)
	// The public URL names the TLS listener's port, so it is picked first.
	addr := freeport.Addr(t)
	svc := testenv.Service(t, "", server.ServeConfig{TLSListen: addr, PublicURL: "https://" + addr,
		TLS: server.TLSFiles{Cert: pki.CertFile, Key: pki.KeyFile}})
	return svc, pki
}

// Real Web Push senders, npm web-push 3.6.7 and webpush-go 1.4.0, send
// VAPID-signed aes128gcm messages over https to a channel a running app
// opened with their application server key; the app gets each message as
// a webpush event and decrypts it with its own keys to the plaintext sent.
func TestWebPushRealSenders(t *testing.T) {
	svc, pki := webPushService(t)
	// The device links over the plain loopback listener.
	d := testenv.StartDaemon(t, daemon.Config{Service: "http://" + svc.Addr().String()})
	priv, pub, err := webpushgo.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 60*time.Second)
	ch, err := d.Client.Open(ctx, "chat", app.OpenRequest{VAPIDKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ch.URI, "https://") {
		t.Fatalf("channel URI %q is not https", ch.URI)
	}
	stream, err := d.Client.Listen(ctx, "chat", app.ListenOptions{Foreground: true})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	nextEvent(t, stream, app.EventStatus)
	sub := testenv.NewSubscriber(t)

	roots := x509.NewCertPool()
	roots.AddCert(pki.CA)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}

	t.Run("webpush-go", func(t *testing.T) {
		plain := "from webpush-go: " + strings.Repeat("é", 500)
		res, err := webpushgo.SendNotification([]byte(plain), &webpushgo.Subscription{Endpoint: ch.URI,
			Keys: webpushgo.Keys{P256dh: sub.P256dh(), Auth: sub.Auth()}},
			&webpushgo.Options{HTTPClient: client, Subscriber: "mailto:ops@example.org", VAPIDPublicKey: pub, VAPIDPrivateKey: priv, TTL: 600})
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusCreated || !strings.HasPrefix(res.Header.Get("Location"), ch.URI+server.MessagesSegment) {
			t.Fatalf("answer %d %v %s", res.StatusCode, res.Header, body)
		}
		e := nextEvent(t, stream, app.EventWebPush)
		got, err := sub.Decrypt(e.Body)
		if err != nil || string(got) != plain {
			t.Fatalf("decrypted %q, %v", got, err)
		}
	})

	t.Run("npm web-push", func(t *testing.T) {
		node, err := exec.LookPath("node")
		if err != nil {
			t.Skip("node is not installed")
		}
		dir, _ := filepath.Abs(filepath.Join("testdata", "webpush-node"))
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "web-push")); err != nil {
			npm, err := exec.LookPath("npm")
			if err != nil {
				t.Skip("npm is not installed")
			}
			cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("npm install: %v\n%s", err, out)
			}
		}
		send := func(payload, topic string, ttl int) map[string]any {
			t.Helper()
			in, _ := json.Marshal(map[string]any{"endpoint": ch.URI, "p256dh": sub.P256dh(), "auth": sub.Auth(),
				"vapidPublic": pub, "vapidPrivate": priv, "payload": payload, "ttl": ttl, "topic": topic})
			cmd := exec.CommandContext(ctx, node, "send.js")
			cmd.Dir = dir
			cmd.Stdin = bytes.NewReader(in)
			cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+pki.CAFile)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("node send.js: %v", err)
			}
			var res map[string]any
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("node said %s", out)
			}
			return res
		}
		plain := "from npm web-push"
		res := send(plain, "", 3600)
		if res["status"] != float64(201) {
			t.Fatalf("web-push got %v", res)
		}
		e := nextEvent(t, stream, app.EventWebPush)
		got, err := sub.Decrypt(e.Body)
		if err != nil || string(got) != plain {
			t.Fatalf("decrypted %q, %v", got, err)
		}
	})

	// The daemon passed the key on: the channel refuses an unsigned message.
	req, _ := http.NewRequest(http.MethodPost, ch.URI, strings.NewReader("unsigned"))
	req.Header.Set("TTL", "60")
	req.Header.Set("Content-Encoding", "aes128gcm")
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") != "vapid" {
		t.Fatalf("unsigned message to a restricted channel: %d %v", res.StatusCode, res.Header)
	}
}

// A restricted channel outlives a daemon restart: the daemon kept its key,
// re-registers with it, and the app opening it again with the same key
// gets the same URI, still restricted; another key is refused.
func TestWebPushRestrictedChannelSurvivesRestart(t *testing.T) {
	svc, pki := webPushService(t)
	data := t.TempDir()
	cfg := daemon.Config{Service: "http://" + svc.Addr().String(), DataDir: data}
	d := testenv.StartDaemon(t, cfg)
	_, pub, err := webpushgo.GenerateVAPIDKeys()
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 60*time.Second)
	before, err := d.Client.Open(ctx, "chat", app.OpenRequest{VAPIDKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	d.Stop()
	d = testenv.StartDaemon(t, cfg)
	after, err := d.Client.Open(ctx, "chat", app.OpenRequest{VAPIDKey: pub})
	if err != nil || after.URI != before.URI {
		t.Fatalf("reopened after a restart: %+v, %v; want URI %s", after, err, before.URI)
	}
	_, otherPub, _ := webpushgo.GenerateVAPIDKeys()
	if _, err := d.Client.Open(ctx, "chat", app.OpenRequest{VAPIDKey: otherPub}); err == nil {
		t.Fatal("the channel was reopened with another key")
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.CA)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	req, _ := http.NewRequest(http.MethodPost, after.URI, strings.NewReader("unsigned"))
	req.Header.Set("TTL", "60")
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned message after the restart: %d", res.StatusCode)
	}
}

// A Web Push message to an app that is not running (and has no background
// handler) is dropped and counted, as raw is.
func TestWebPushToAppNotRunning(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ctx := ctxFor(t, 30*time.Second)
	ch, err := d.Client.Open(ctx, "sleeper", app.OpenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, ch.URI, strings.NewReader("never seen"))
	req.Header.Set("TTL", "60")
	req.Header.Set("Content-Encoding", "aes128gcm")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("answer %d", res.StatusCode)
	}
	waitCounter(t, d.Client, daemon.CountRawDropped, 1)
}

// npm web-push sends to a browser's push endpoint (Firefox's protocol,
// docs/browsers.md) as to an app's channel URI: the browser is handed the
// encrypted body unchanged, with its encoding, and decrypts it with the
// keys it subscribed with.
func TestWebPushCLIToBrowser(t *testing.T) {
	svc, pki := webPushService(t)
	roots := x509.NewCertPool()
	roots.AddCert(pki.CA)
	br := &wsBrowser{dialer: &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: roots}, HandshakeTimeout: 10 * time.Second}}
	br.connect(t, svc)
	br.send(t, browserFrame{MessageType: "register", ChannelID: "0b7d5c2e-6f1a-4c3b-8e9d-2a1f3c4b5d6e"})
	reg := br.next(t)
	if reg.Status != 200 || !strings.HasPrefix(reg.PushEndpoint, "https://") {
		t.Fatalf("register answered %+v; want 200 and an https endpoint", reg)
	}
	sub := testenv.NewSubscriber(t)
	webPushCLI(t, reg.PushEndpoint, sub, pki.CAFile, "to a browser")
	f := br.next(t)
	body, err := base64.RawURLEncoding.DecodeString(f.Data)
	if f.MessageType != "notification" || f.ChannelID != reg.ChannelID || err != nil {
		t.Fatalf("the browser got %+v (data: %v); want a notification on its channel", f, err)
	}
	if f.Headers["encoding"] != "aes128gcm" {
		t.Fatalf("headers %v; want encoding aes128gcm", f.Headers)
	}
	if got, err := sub.Decrypt(body); err != nil || string(got) != "to a browser" {
		t.Fatalf("decrypted %q, %v; want %q", got, err, "to a browser")
	}
	br.ack(t, f)
}
