package daemon_test

import (
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/dbustest"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

const sharedName = "org.example.Shared"

// intruder is another Unix user's process that takes an app's bus name
// after the app left the bus, serves a Connector2 on it, and tries to
// unregister and register the app's token.
type intruder interface {
	// attempts reports the D-Bus error name Unregister answered ("" for
	// none) and Register's result and reason.
	attempts() (unregisterErr, registerResult, registerReason string)
	// leave releases the name and returns the methods the distributor
	// called on the intruder's connector.
	leave() []string
}

// testUnifiedPushWrongUser is the attack of a user who takes the bus name
// of another user's app while that app is away: nothing of the app's
// reaches the intruder (no Message, no NewEndpoint, also after a daemon
// restart), its Unregister and Register are refused, and the app, back on
// the bus, gets every message in order.
func testUnifiedPushWrongUser(t *testing.T, bus string, cfg daemon.Config, start func(t *testing.T) intruder) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	cfg.Service, cfg.DataDir, cfg.UnifiedPushBus = svc.URL(), t.TempDir(), bus
	d := testenv.StartDaemon(t, cfg)

	owner := newConnector(t, bus, sharedName, 2)
	if res, reason := owner.register2(sharedName, "token-a", ""); res != "REGISTRATION_SUCCEEDED" {
		t.Fatalf("Register = %s %s", res, reason)
	}
	ep := owner.next("NewEndpoint").endpoint
	if code := post(t, ep, messageID(1), []byte("one")); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	if m := owner.next("Message"); string(m.msg) != "one" {
		t.Fatalf("Message %q", m.msg)
	}

	// The app leaves the bus; another user's process takes its name.
	if _, err := owner.conn.ReleaseName(sharedName); err != nil {
		t.Fatal(err)
	}
	in := start(t)
	wrong := func() int64 { return counter(t, d, daemon.CountUnifiedPushWrongUser) }

	if code := post(t, ep, messageID(2), []byte("for the owner only")); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	testenv.Eventually(t, 10*time.Second, "the Message withheld", func() bool { return wrong() >= 1 })
	unregErr, res, reason := in.attempts()
	if unregErr != "org.unifiedpush.Error.Unauthorized" {
		t.Errorf("the intruder's Unregister answered %q, want org.unifiedpush.Error.Unauthorized", unregErr)
	}
	if res != "REGISTRATION_FAILED" || reason != "UNAUTHORIZED" {
		t.Errorf("the intruder's Register = %s %s, want REGISTRATION_FAILED UNAUTHORIZED", res, reason)
	}
	if code := post(t, ep, messageID(3), []byte("still open")); code != http.StatusOK {
		t.Errorf("POST after the intruder's Unregister: %d, want 200 (the channel stays open)", code)
	}

	// A restart announces every endpoint and retries the outbox: the
	// intruder still gets neither.
	before := wrong()
	d.Stop()
	d = testenv.StartDaemon(t, cfg)
	testenv.Eventually(t, 10*time.Second, "NewEndpoint and Message withheld after the restart", func() bool { return wrong() >= before+2 })
	// The second message may reach the phone only after the restart.
	var held int64
	testenv.Eventually(t, 10*time.Second, "both messages held for the owner", func() bool {
		held = counter(t, d, daemon.CountUnifiedPushQueued) - counter(t, d, daemon.CountUnifiedPushDelivered)
		return held == 2
	})
	if calls := in.leave(); len(calls) != 0 {
		t.Errorf("the intruder was called: %v", calls)
	}

	// The owner is back: everything held arrives, in order, then a new one.
	if reply, err := owner.conn.RequestName(sharedName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning the name again: %v %v", reply, err)
	}
	if code := post(t, ep, messageID(4), []byte("back")); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	for _, want := range []string{"for the owner only", "still open", "back"} {
		if m := owner.next("Message"); string(m.msg) != want || m.token != "token-a" {
			t.Errorf("the owner got %q (token %q), want %q", m.msg, m.token, want)
		}
	}
	t.Logf("withheld calls and refused requests: %d; held for the owner meanwhile: %d; the owner then got all 3 in order", wrong(), held)
}

// TestUnifiedPushWrongUser runs the attack with the intruder in this
// process, on its own bus connection, which the daemon is told runs as
// another user (neither root nor the daemon's own, who are trusted): the
// bus's answer is real for every other connection. It runs as any user;
// TestUnifiedPushWrongUserProcess is the same with a real process of
// another user.
func TestUnifiedPushWrongUser(t *testing.T) {
	bus := dbustest.SessionBus(t)
	otherUser := uint32(os.Geteuid()) + 60001
	var mu sync.Mutex
	var other string
	cfg := daemon.Config{UnifiedPushPeerUID: func(conn *dbus.Conn, name string) (uint32, error) {
		mu.Lock()
		o := other
		mu.Unlock()
		if name == o {
			return otherUser, nil
		}
		var uid uint32
		err := conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, name).Store(&uid)
		return uid, err
	}}
	testUnifiedPushWrongUser(t, bus, cfg, func(t *testing.T) intruder {
		conn, err := dbus.Connect(bus)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		other = conn.Names()[0]
		mu.Unlock()
		in := &localIntruder{c: &connector{t: t, conn: conn, name: sharedName, calls: make(chan upCall, 32), failNext: make(chan struct{}, 1)}}
		if err := conn.Export(connector2Object{in.c}, "/org/unifiedpush/Connector", "org.unifiedpush.Connector2"); err != nil {
			t.Fatal(err)
		}
		if reply, err := conn.RequestName(sharedName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
			t.Fatalf("the intruder owning %s: %v %v", sharedName, reply, err)
		}
		in.unregErr = unregisterErr(in.c.distributor(), "token-a")
		in.res, in.reason = in.c.register2(sharedName, "token-a", "")
		return in
	})
}

// unregisterErr calls Distributor2.Unregister and returns the D-Bus error
// name it answered, "" for none.
func unregisterErr(dist dbus.BusObject, token string) string {
	var out map[string]dbus.Variant
	err := dist.Call("org.unifiedpush.Distributor2.Unregister", 0, map[string]dbus.Variant{"token": dbus.MakeVariant(token)}).Store(&out)
	var de dbus.Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &de):
		return de.Name
	default:
		return err.Error()
	}
}

type localIntruder struct {
	c                     *connector
	unregErr, res, reason string
}

func (l *localIntruder) attempts() (string, string, string) { return l.unregErr, l.res, l.reason }

func (l *localIntruder) leave() []string {
	l.c.conn.Close()
	var out []string
	for {
		select {
		case c := <-l.c.calls:
			out = append(out, c.method)
		default:
			return out
		}
	}
}

const activatedName = "org.example.Activated"

// TestUnifiedPushActivatedChild is the app the bus starts for
// TestUnifiedPushActivation (its .service file runs this test binary): it
// takes its name, writes the first message it gets to the file named by
// its last argument, and leaves when the test calls its Quit (leaving
// sooner could lose its reply to Message).
func TestUnifiedPushActivatedChild(t *testing.T) {
	bus := os.Getenv("DBUS_STARTER_ADDRESS")
	args := flag.Args()
	if bus == "" || len(args) != 1 {
		t.Skip("started by the bus for TestUnifiedPushActivation")
	}
	conn, err := dbus.Connect(bus)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &connector{t: t, conn: conn, name: activatedName, calls: make(chan upCall, 32), failNext: make(chan struct{}, 1)}
	if err := conn.Export(connector2Object{c}, "/org/unifiedpush/Connector", "org.unifiedpush.Connector2"); err != nil {
		t.Fatal(err)
	}
	quit := make(quitter)
	if err := conn.Export(quit, "/test", "org.example.Test"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(activatedName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s: %v %v", activatedName, reply, err)
	}
	m := c.next("Message")
	if err := os.WriteFile(args[0], m.msg, 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-quit:
	case <-time.After(30 * time.Second):
		t.Fatal("never told to quit")
	}
}

// quitter is a D-Bus object whose Quit ends the activated child.
type quitter chan struct{}

func (q quitter) Quit() *dbus.Error {
	close(q)
	return nil
}

// TestUnifiedPushActivation: a message for an app that is not running but
// that the bus can start (a D-Bus service file, as desktop apps install)
// starts it and reaches it, after its user is checked like any other's.
func TestUnifiedPushActivation(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	got := filepath.Join(dir, "message")
	service := "[D-BUS Service]\nName=" + activatedName + "\nExec=" + self + " -test.run=^TestUnifiedPushActivatedChild$ -test.count=1 " + got + "\n"
	if err := os.WriteFile(filepath.Join(dir, activatedName+".service"), []byte(service), 0o644); err != nil {
		t.Fatal(err)
	}
	bus := dbustest.ActivatingBus(t, dir)
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), UnifiedPushBus: bus})

	// The app registers while it runs, then leaves the bus.
	app := newConnector(t, bus, activatedName, 2)
	if res, reason := app.register2(activatedName, "token-act", ""); res != "REGISTRATION_SUCCEEDED" {
		t.Fatalf("Register = %s %s", res, reason)
	}
	ep := app.next("NewEndpoint").endpoint
	// Released (the bus answers once it is) rather than only closed, so
	// that the name is free when the message comes.
	if _, err := app.conn.ReleaseName(activatedName); err != nil {
		t.Fatal(err)
	}
	app.conn.Close()

	if code := post(t, ep, messageID(1), []byte("wake up")); code != http.StatusOK {
		t.Fatalf("POST: %d", code)
	}
	testenv.Eventually(t, 20*time.Second, "the message taken by the started app", func() bool {
		return counter(t, d, daemon.CountUnifiedPushDelivered) == 1
	})
	testenv.Eventually(t, 10*time.Second, "the started app's file", func() bool {
		b, err := os.ReadFile(got)
		return err == nil && string(b) == "wake up"
	})
	if n := counter(t, d, daemon.CountUnifiedPushWrongUser); n != 0 {
		t.Errorf("unifiedpush_wrong_user = %d for the app's own user", n)
	}
	conn, err := dbus.Connect(bus)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// No reply wanted: the child may be gone before it could send one.
	if err := conn.Object(activatedName, "/test").Call("org.example.Test.Quit", dbus.FlagNoReplyExpected).Err; err != nil {
		t.Errorf("telling the started app to quit: %v", err)
	}
}
