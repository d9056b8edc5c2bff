package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/internal/testenv"
)

// freeLoopbackAddr returns a loopback address nothing listens on, for a
// service that must come back on the same port after a restart (its
// channel URIs carry it).
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
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
// daemon (`herald run` with its embedded service): each opens its channel
// and prints the URI, gets a raw notification and a foreground toast sent
// through the MPNS endpoint, keeps going across a daemon restart, and
// prints each notification exactly once.
func TestExampleApps(t *testing.T) {
	examples := []struct {
		name   string
		interp string
		script string
	}{
		{"python", "python3", "../examples/python-app/herald_app.py"},
		{"node", "node", "../examples/node-app/herald-app.js"},
	}
	var herald string
	binDir := t.TempDir()
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			interp, err := exec.LookPath(ex.interp)
			if err != nil {
				t.Skipf("%s is not installed: %v", ex.interp, err)
			}
			if herald == "" {
				herald, _ = buildBinaries(t, binDir)
			}
			socket := testenv.SocketPath(t)
			env := childEnv("HERALD_SOCKET=" + socket)
			data, cfg, listen := t.TempDir(), daemonConfig(t), freeLoopbackAddr(t)
			runDaemon := func() *proc {
				d := startProc(t, env, herald, "run", "--listen", listen, "--data", data, "--socket", socket, "--config", cfg)
				waitLinkUp(t, socket)
				return d
			}
			d := runDaemon()

			appID := ex.name + "-demo"
			a := startProc(t, env, interp, ex.script, appID)
			uri := strings.TrimPrefix(a.waitLine(t, "uri *"), "uri ")
			if !strings.HasPrefix(uri, "http://"+listen+"/") {
				t.Fatalf("the app printed the URI %q, want one under http://%s/", uri, listen)
			}
			a.waitLine(t, "connection up")
			send := func(round string) {
				t.Helper()
				raw := "raw-" + round
				mustReceive(t, uri, mpnsRequest{class: "3", messageID: raw, body: []byte("héllo " + round)})
				a.waitLine(t, "raw "+raw+" héllo "+round)
				mustReceive(t, uri, toastReq("toast-"+round))
				a.waitLine(t, "toast Hello | toast-"+round+" | ")
			}
			send("1")

			d.stop(t)
			d = runDaemon()
			// The app is back on its stream once it hears the link is up.
			a.waitLine(t, "connection up")
			send("2")
			d.stop(t)

			a.cmd.Process.Kill()
			<-a.done
			lines := strings.Split(strings.TrimSpace(a.stdout.String()), "\n")
			for _, want := range []string{"raw raw-1 héllo 1", "raw raw-2 héllo 2", "toast Hello | toast-1 | ", "toast Hello | toast-2 | "} {
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
