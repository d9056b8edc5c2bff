package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/wire"
)

const (
	toastXML = `<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>Hi</wp:Text1><wp:Text2>there</wp:Text2></wp:Toast></wp:Notification>`
	tileXML  = `<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Tile><wp:Count>3</wp:Count><wp:Title>Inbox</wp:Title></wp:Tile></wp:Notification>`
)

var epoch = time.Date(2026, 3, 1, 23, 0, 0, 0, time.UTC)

// pki is a CA made for one test, with a server certificate for 127.0.0.1.
type pki struct {
	dir      string
	caCert   *x509.Certificate
	caKey    *ecdsa.PrivateKey
	caFile   string
	certFile string
	keyFile  string
	pool     *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Herald test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.caFile = filepath.Join(p.dir, "ca.pem")
	writePEM(t, p.caFile, "CERTIFICATE", der)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.caCert)
	p.certFile, p.keyFile = p.issue(t, "127.0.0.1", x509.ExtKeyUsageServerAuth)
	return p
}

// issue makes a certificate with the given CN signed by the CA and returns
// its certificate and key files.
func (p *pki) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.NewReplacer(".", "_", " ", "_").Replace(cn)
	certFile, keyFile = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

// client returns an HTTP client that trusts the CA and, when cn is not "",
// presents a client certificate for cn.
func (p *pki) client(t *testing.T, cn string) *http.Client {
	t.Helper()
	tc := &tls.Config{RootCAs: p.pool}
	if cn != "" {
		cf, kf := p.issue(t, cn, x509.ExtKeyUsageClientAuth)
		cert, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := &http.Transport{TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func writePEM(t *testing.T, file, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// env is a running service with a fake clock.
type env struct {
	svc   *server.Service
	clock *clock.Fake
	pki   *pki
}

// startEnv starts a real service on loopback with TLS for authenticated
// senders; cfg's Server.Clock is replaced by a fake clock.
func startEnv(t *testing.T, cfg server.ServeConfig) *env {
	t.Helper()
	e := &env{clock: clock.NewFake(epoch), pki: newPKI(t)}
	cfg.Server.Clock = e.clock
	cfg.TLSListen = "127.0.0.1:0"
	cfg.TLS = server.TLSFiles{Cert: e.pki.certFile, Key: e.pki.keyFile, ClientCA: e.pki.caFile}
	e.svc = testenv.Service(t, "", cfg)
	return e
}

// device is a device speaking the wire protocol by hand, so tests can
// also send what no well-behaved daemon would.
type device struct {
	t      *testing.T
	ws     *websocket.Conn
	id     string
	secret string
	req    uint64
	notes  []wire.Notification
}

func wsURL(base string) string {
	return "ws" + strings.TrimPrefix(base, "http") + server.DevicePath
}

// dial connects and says hello; an empty id enrols a new device.
func dial(t *testing.T, base, id, secret string) (*device, error) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(wsURL(base), nil)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { ws.Close() })
	d := &device{t: t, ws: ws, id: id, secret: secret}
	f, err := d.read()
	if err != nil {
		return nil, err
	}
	d.send(helloFor(t, f, id, secret, 0))
	f, err = d.read()
	if err != nil {
		return nil, err
	}
	w, ok := f.(*wire.Welcome)
	if !ok {
		t.Fatalf("first frame is %T, not welcome", f)
	}
	if id == "" {
		d.id, d.secret = w.ID, w.Secret
	}
	return d, nil
}

func mustDial(t *testing.T, base string) *device {
	t.Helper()
	d, err := dial(t, base, "", "")
	if err != nil {
		t.Fatalf("enrolling: %v", err)
	}
	return d
}

func (d *device) send(v any) {
	d.t.Helper()
	b, err := wire.Encode(v)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := d.ws.WriteMessage(websocket.TextMessage, b); err != nil {
		d.t.Fatalf("device write: %v", err)
	}
}

// read returns the next frame; a close from the service is returned as
// its *websocket.CloseError.
func (d *device) read() (any, error) {
	d.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := d.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	return wire.DecodeService(data)
}

// await reads until the answer to request req, keeping notifications.
func (d *device) await(req uint64) any {
	d.t.Helper()
	for {
		f, err := d.read()
		if err != nil {
			d.t.Fatalf("waiting for reply %d: %v", req, err)
		}
		switch f := f.(type) {
		case *wire.Notify:
			d.notes = append(d.notes, f.Notifications...)
		case *wire.Registered:
			if f.ReqID == req {
				return f
			}
		case *wire.Result:
			if f.ReqID == req {
				return f
			}
		}
	}
}

func (d *device) register(app, service string, renew bool) *wire.Registered {
	d.t.Helper()
	d.req++
	d.send(wire.Register{Type: wire.TypeRegister, ReqID: d.req, App: app, Channel: "main", ServiceName: service, Renew: renew})
	return d.await(d.req).(*wire.Registered)
}

// open registers app and fails the test unless it gets a URI.
func (d *device) open(app, service string) *wire.Registered {
	d.t.Helper()
	r := d.register(app, service, false)
	if r.Code != "" || r.URI == "" {
		d.t.Fatalf("register %s: %s %s", app, r.Code, r.Message)
	}
	return r
}

func (d *device) bind(channelID string, toast, tile bool) *wire.Result {
	d.t.Helper()
	d.req++
	d.send(wire.Bind{Type: wire.TypeBind, ReqID: d.req, ChannelID: channelID, Toast: toast, Tile: tile})
	return d.await(d.req).(*wire.Result)
}

// nextNotification waits for the next notification pushed to the device.
func (d *device) nextNotification() wire.Notification {
	d.t.Helper()
	for len(d.notes) == 0 {
		f, err := d.read()
		if err != nil {
			d.t.Fatalf("waiting for a notification: %v", err)
		}
		if n, ok := f.(*wire.Notify); ok {
			d.notes = append(d.notes, n.Notifications...)
		}
	}
	n := d.notes[0]
	d.notes = d.notes[1:]
	return n
}

// hangUp closes the device's connection and waits until the service has
// noticed.
func (d *device) hangUp(svc *server.Service) {
	d.t.Helper()
	d.ws.Close()
	testenv.Eventually(d.t, 10*time.Second, "service to notice the device left", func() bool { return !svc.Connected(d.id) })
}

// closeCode reads until the service closes the connection and returns the
// close code.
func closeCode(t *testing.T, ws *websocket.Conn) int {
	t.Helper()
	for {
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Fatalf("connection ended without a close frame: %v", err)
	}
}

// answer is what a sender sees.
type answer struct {
	code    int
	header  http.Header
	body    string
	network error
}

func postMPNS(t *testing.T, c *http.Client, method, uri string, h http.Header, body string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, uri, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{network: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return answer{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// mpnsHeaders builds the headers an MPNS sender library sends.
func mpnsHeaders(target, class, msgID string) http.Header {
	h := http.Header{"Content-Type": {"text/xml"}, "Accept": {"application/*"}}
	if target != "" {
		h.Set("X-WindowsPhone-Target", target)
	}
	if class != "" {
		h.Set("X-NotificationClass", class)
	}
	if msgID != "" {
		h.Set("X-MessageID", msgID)
	}
	return h
}

func rawHeaders() http.Header { return mpnsHeaders("", "3", "") }

// mustPost sends a raw notification and fails unless it is Received.
func mustPost(t *testing.T, c *http.Client, uri string) {
	t.Helper()
	r := postMPNS(t, c, http.MethodPost, uri, rawHeaders(), "x")
	if r.code != http.StatusOK || r.header.Get("X-NotificationStatus") != "Received" {
		t.Fatalf("POST %s: %d %v %s %v", uri, r.code, r.header, r.body, r.network)
	}
}

// startPlain starts a real service on loopback without TLS.
func startPlain(t *testing.T, cfg server.ServeConfig) *server.Service {
	t.Helper()
	cfg.Server.Clock = clock.NewFake(epoch)
	return testenv.Service(t, "", cfg)
}

// withDB gives cfg a database and a listener of its own.
func withDB(t *testing.T, cfg server.ServeConfig) server.ServeConfig {
	t.Helper()
	// The service runs the store and closes it.
	st, err := sqlitestore.Open(t.Context(), filepath.Join(t.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Store = st
	cfg.Listen = "127.0.0.1:0"
	return cfg
}

func itoa(n int) string { return strconv.Itoa(n) }
