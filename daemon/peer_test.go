//go:build linux || darwin || freebsd

package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// asUser is a process of another Unix user, for the daemon: its
// connections come from a client socket bound to its own path, and the
// daemon's credential function (below) names that path's user. Everything
// else about the connection is real.
type asUser struct {
	uid    uint32
	addr   string // the client socket's path
	socket string // the daemon's
	http   *http.Client
}

// users maps a client socket path to the user it stands for; connections
// from any other path get their real credentials.
type users struct{ m sync.Map }

func (u *users) cred(c net.Conn) (uint32, error) {
	uid, err := daemon.SocketPeerUID(c) // the real call, always
	if err != nil {
		return 0, err
	}
	if a, ok := c.RemoteAddr().(*net.UnixAddr); ok {
		if fake, ok := u.m.Load(a.Name); ok {
			return fake.(uint32), nil
		}
	}
	return uid, nil
}

func newUser(t *testing.T, us *users, socket string, uid uint32) *asUser {
	t.Helper()
	dir, err := os.MkdirTemp("", "hu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	u := &asUser{uid: uid, addr: filepath.Join(dir, "c.sock"), socket: socket}
	us.m.Store(u.addr, uid)
	u.http = &http.Client{Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return u.dial() }}}
	return u
}

// dial connects from the user's own bound path (one connection at a time:
// each closes before the next binds the path again).
func (u *asUser) dial() (net.Conn, error) {
	os.Remove(u.addr)
	return net.DialUnix("unix", &net.UnixAddr{Name: u.addr, Net: "unix"}, &net.UnixAddr{Name: u.socket, Net: "unix"})
}

// do sends one local API request and returns the status, the error code
// and the body.
func (u *asUser) do(t *testing.T, method, path, body string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://herald"+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := u.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var er app.ErrorResponse
	json.Unmarshal(b, &er)
	return resp.StatusCode, er.Code, b
}

// listen opens the app's event stream as the user; it returns the
// handshake's status and the stream, if it opened.
func (u *asUser) listen(t *testing.T, appID string) (int, *websocket.Conn) {
	t.Helper()
	d := websocket.Dialer{NetDialContext: func(context.Context, string, string) (net.Conn, error) { return u.dial() }, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial("ws://herald/v1/apps/"+appID+"/events", nil)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	if resp == nil {
		t.Fatalf("event stream: %v", err)
	}
	return resp.StatusCode, c
}

func sendToast(t *testing.T, uri, text string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, uri, bytes.NewReader((&mpns.Toast{Text1: text}).XML()))
	req.Header.Set(mpns.HeaderTarget, "toast")
	req.Header.Set(mpns.HeaderNotificationClass, "2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get(mpns.HeaderNotificationStatus) != mpns.StatusReceived {
		t.Fatalf("toast: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestPeerCredentials reads the real credentials of a real socket: the
// test process's own user, whom the daemon records as the owner of the app
// it opens and shows in the channel list.
func TestPeerCredentials(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ctx := context.Background()
	if _, err := d.Client.Open(ctx, "notes", app.OpenRequest{}); err != nil {
		t.Fatal(err)
	}
	chans, err := d.Client.Channels(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) != 1 || chans[0].OwnerUID == nil || *chans[0].OwnerUID != uint32(os.Geteuid()) {
		t.Fatalf("channels %+v, want notes owned by %d", chans, os.Geteuid())
	}
	c, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The client end of the pair also names its peer: this process.
	if uid, err := daemon.SocketPeerUID(c); err != nil || uid != uint32(os.Geteuid()) {
		t.Fatalf("SocketPeerUID = %d, %v; want %d", uid, err, os.Geteuid())
	}
	if _, err := daemon.SocketPeerUID(&net.TCPConn{}); err == nil {
		t.Fatal("a TCP connection has no peer user, but no error")
	}
}

// TestAppOwnership is one user's process trying to act for another user's
// app on a shared socket: every app route is refused with 403, lists show
// only the caller's apps, and the owner's app is untouched. The owner, and
// the daemon's own user, keep working.
func TestAppOwnership(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	us := &users{}
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), PeerCred: us.cred})
	// Two users who are neither root nor the daemon's.
	base := uint32(os.Geteuid()) + 60000
	alice := newUser(t, us, d.Socket, base+1)
	bob := newUser(t, us, d.Socket, base+2)

	status, _, body := alice.do(t, "POST", "/v1/apps/mail/channel", `{"toast":true,"tile":true}`)
	if status != http.StatusOK {
		t.Fatalf("alice opens mail: %d %s", status, body)
	}
	var mail app.Channel
	json.Unmarshal(body, &mail)
	if status, _, body := bob.do(t, "POST", "/v1/apps/chat/channel", `{"toast":true}`); status != http.StatusOK {
		t.Fatalf("bob opens chat: %d %s", status, body)
	}
	sendToast(t, mail.URI, "for alice")
	testenv.Eventually(t, 10*time.Second, "alice's toast stored", func() bool {
		toasts, err := d.Client.Toasts(context.Background(), "mail")
		return err == nil && len(toasts) == 1
	})

	attacks := []struct {
		method, path, body string
	}{
		{"GET", "/v1/apps/mail/channel", ""},
		{"POST", "/v1/apps/mail/channel", `{}`},
		{"POST", "/v1/apps/mail/channel", `{"renew":true}`},
		{"DELETE", "/v1/apps/mail/channel", ""},
		{"PATCH", "/v1/apps/mail/channel/bindings", `{"toast":false}`},
		{"POST", "/v1/apps/mail/pins", `{"tile_id":"/Steal.xaml"}`},
		{"GET", "/v1/apps/mail/events", ""},
		{"GET", "/v1/apps/mai%6C/channel", ""},
		{"GET", "/v1/apps/x/../mail/channel", ""},
		{"DELETE", "//v1/apps/mail/channel", ""},
		{"PUT", "/v1/power", `{"level":"critical"}`},
	}
	for _, a := range attacks {
		t.Run("bob "+a.method+" "+a.path, func(t *testing.T) {
			status, code, body := bob.do(t, a.method, a.path, a.body)
			if status != http.StatusForbidden || code != app.CodeUnauthorizedAccess {
				t.Fatalf("%d %s", status, body)
			}
		})
	}
	if status, _ := bob.listen(t, "mail"); status != http.StatusForbidden {
		t.Fatalf("bob's event stream for mail: %d", status)
	}
	// Lists: bob sees his own app only, never alice's channel URI or toast.
	for _, path := range []string{"/v1/channels", "/v1/toasts", "/v1/tiles", "/v1/channels?app=mail", "/v1/toasts?app=mail"} {
		status, _, body := bob.do(t, "GET", path, "")
		if status != http.StatusOK || strings.Contains(string(body), "mail") || strings.Contains(string(body), mail.URI) {
			t.Errorf("bob GET %s: %d %s", path, status, body)
		}
	}
	if _, _, body := bob.do(t, "GET", "/v1/channels", ""); !strings.Contains(string(body), `"chat"`) {
		t.Errorf("bob's own channel missing from his list: %s", body)
	}

	// Alice's channel is as she left it, and she still uses it.
	ch, err := d.Client.Find(context.Background(), "mail")
	if err != nil || ch.URI != mail.URI || !ch.Toast || !ch.Tile || len(ch.Pinned) != 0 {
		t.Fatalf("mail after the attacks: %+v, %v", ch, err)
	}
	if st, err := d.Client.Status(context.Background()); err != nil || st.Power != "normal" {
		t.Fatalf("power after the attacks: %+v, %v", st, err)
	}
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/apps/mail/channel", ""},
		{"PATCH", "/v1/apps/mail/channel/bindings", `{"toast":true}`},
		{"POST", "/v1/apps/mail/pins", `{"tile_id":"/Inbox.xaml"}`},
	} {
		if status, _, body := alice.do(t, r.method, r.path, r.body); status != http.StatusOK {
			t.Errorf("alice %s %s: %d %s", r.method, r.path, status, body)
		}
	}
	if status, _, body := alice.do(t, "GET", "/v1/toasts", ""); status != http.StatusOK || !strings.Contains(string(body), "for alice") || strings.Contains(string(body), "chat") {
		t.Errorf("alice's toasts: %d %s", status, body)
	}
	if status, _ := alice.listen(t, "mail"); status != http.StatusSwitchingProtocols {
		t.Fatalf("alice's event stream: %d", status)
	}
	// While mail runs the daemon's user sees it running, bob does not.
	testenv.Eventually(t, 10*time.Second, "mail running", func() bool {
		st, err := d.Client.Status(context.Background())
		return err == nil && len(st.Running) == 1 && st.Running[0] == "mail"
	})
	if status, _, body := bob.do(t, "GET", "/v1/status", ""); status != http.StatusOK || strings.Contains(string(body), "mail") || !strings.Contains(string(body), `"connected":true`) {
		t.Errorf("bob's status: %d %s", status, body)
	}
	// The daemon's own user (the real credentials of this process) acts
	// for any app and sees every owner.
	chans, err := d.Client.Channels(context.Background(), "")
	if err != nil || len(chans) != 2 || *chans[0].OwnerUID != bob.uid || *chans[1].OwnerUID != alice.uid {
		t.Fatalf("channels as the daemon's user: %+v, %v", chans, err)
	}
	if err := d.Client.Close(context.Background(), "chat"); err != nil {
		t.Fatalf("the daemon's user closes bob's channel: %v", err)
	}
	// A closed channel's app id still belongs to its user.
	if status, _, body := alice.do(t, "POST", "/v1/apps/chat/channel", `{}`); status != http.StatusForbidden {
		t.Fatalf("alice opens bob's closed app id: %d %s", status, body)
	}
	// A bad app id is the handler's 400, and claims nothing.
	if status, _, _ := bob.do(t, "POST", "/v1/apps/a%20b/channel", `{}`); status != http.StatusBadRequest {
		t.Fatalf("bad app id: %d", status)
	}
}
