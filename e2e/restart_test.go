package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

func openToast(t testing.TB, c *app.Client, appID string) app.Channel {
	t.Helper()
	yes := true
	ch, err := c.Open(ctxFor(t, 10*time.Second), appID, app.OpenRequest{Toast: &yes})
	if err != nil {
		t.Fatalf("opening %s: %v", appID, err)
	}
	return ch
}

func deviceID(t testing.TB, c *app.Client) string {
	t.Helper()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.DeviceID == "" {
		t.Fatal("daemon has no device id")
	}
	return st.DeviceID
}

// waitToasts waits until appID has exactly the toasts with these message
// ids, in order.
func waitToasts(t testing.TB, c *app.Client, appID string, ids ...string) {
	t.Helper()
	var got []string
	testenv.Eventually(t, 10*time.Second, "toasts", func() bool {
		toasts, err := c.Toasts(context.Background(), appID)
		if err != nil {
			return false
		}
		got = got[:0]
		for _, to := range toasts {
			got = append(got, to.MessageID)
		}
		return len(got) >= len(ids)
	})
	if len(got) != len(ids) {
		t.Fatalf("toasts %v, want %v", got, ids)
	}
	for i := range ids {
		if got[i] != ids[i] {
			t.Fatalf("toasts %v, want %v", got, ids)
		}
	}
}

func toastReq(id string) mpnsRequest {
	return mpnsRequest{target: "toast", class: "2", messageID: id, body: toastXML("Hello", id)}
}

// TestDaemonRestart: the phone restarts with the same data directory; its
// apps get the same channel URIs and what was sent meanwhile arrives.
func TestDaemonRestart(t *testing.T) {
	svc := testenv.Service(t, "", server.ServeConfig{})
	data := t.TempDir()
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), DataDir: data})
	ch := openToast(t, d.Client, "demo")
	id := deviceID(t, d.Client)
	mustReceive(t, ch.URI, toastReq("before"))
	waitToasts(t, d.Client, "demo", "before")

	d.Stop()
	testenv.Eventually(t, 10*time.Second, "service sees the device go", func() bool { return !svc.Connected(id) })
	r := post(t, ch.URI, toastReq("while-down"))
	if r.status != 200 || r.notification != "Received" || r.subscription != "Active" || r.device != "TempDisconnected" {
		t.Fatalf("while the phone is away: %d %s/%s/%s, want 200 Received/Active/TempDisconnected", r.status,
			r.notification, r.subscription, r.device)
	}

	d = testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), DataDir: data})
	if got := deviceID(t, d.Client); got != id {
		t.Fatalf("device id %q after restart, want %q: the phone enrolled again", got, id)
	}
	again := openToast(t, d.Client, "demo")
	if again.URI != ch.URI {
		t.Fatalf("channel URI changed across a daemon restart: %s → %s", ch.URI, again.URI)
	}
	waitToasts(t, d.Client, "demo", "before", "while-down")
	mustReceive(t, ch.URI, toastReq("after"))
	waitToasts(t, d.Client, "demo", "before", "while-down", "after")
}

// TestServiceRestart: the service restarts on the same port with the same
// database; the phone reconnects as the same device and old URIs route.
func TestServiceRestart(t *testing.T) {
	dir := t.TempDir()
	svc := testenv.Service(t, dir, server.ServeConfig{})
	addr := svc.Addr().String()
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL()})
	ch := openToast(t, d.Client, "demo")
	id := deviceID(t, d.Client)
	mustReceive(t, ch.URI, toastReq("before"))
	waitToasts(t, d.Client, "demo", "before")

	if err := svc.Close(); err != nil {
		t.Fatalf("closing service: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, "link down", func() bool {
		st, err := d.Client.Status(context.Background())
		return err == nil && !st.Connected
	})
	svc = testenv.Service(t, dir, server.ServeConfig{Listen: addr})
	// As when the network comes back: reconnect now rather than after the
	// backoff, whose timer runs on the daemon's real clock.
	d.Link().Reconnect()
	testenv.Eventually(t, 10*time.Second, "link up again", func() bool {
		st, err := d.Client.Status(context.Background())
		return err == nil && st.Connected
	})
	if got := deviceID(t, d.Client); got != id {
		t.Fatalf("device id %q after the service restarted, want %q", got, id)
	}
	if !svc.Connected(id) {
		t.Fatalf("the restarted service does not have device %s connected", id)
	}
	mustReceive(t, ch.URI, toastReq("after"))
	waitToasts(t, d.Client, "demo", "before", "after")
}

// TestBothRestart: a notification accepted while the phone is away is kept
// across a service restart and delivered when the phone comes back.
func TestBothRestart(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	svc := testenv.Service(t, dir, server.ServeConfig{})
	addr := svc.Addr().String()
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), DataDir: data})
	ch := openToast(t, d.Client, "demo")
	id := deviceID(t, d.Client)
	d.Stop()
	testenv.Eventually(t, 10*time.Second, "service sees the device go", func() bool { return !svc.Connected(id) })
	if r := post(t, ch.URI, toastReq("queued")); r.status != 200 || r.notification != "Received" {
		t.Fatalf("while the phone is away: %d %s", r.status, r.notification)
	}
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	svc = testenv.Service(t, dir, server.ServeConfig{Listen: addr})
	d = testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), DataDir: data})
	if got := deviceID(t, d.Client); got != id {
		t.Fatalf("device id %q, want %q", got, id)
	}
	waitToasts(t, d.Client, "demo", "queued")
	mustReceive(t, ch.URI, toastReq("after"))
	waitToasts(t, d.Client, "demo", "queued", "after")
}
