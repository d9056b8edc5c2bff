package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/ui"
)

// emulatorProc is a `herald emulate` process started by startEmulator.
type emulatorProc struct {
	sock, uiURL string
	uiKey       string // the start screen's key, from the address it printed
	cmd         *exec.Cmd
	exited      chan error
	stderr      *bytes.Buffer
}

// startEmulator builds herald and runs `herald emulate` with args, on a
// socket and ports of its own, until the test ends.
func startEmulator(t *testing.T, args ...string) *emulatorProc {
	t.Helper()
	bin := heraldBinary(t)
	e := &emulatorProc{sock: testenv.SocketPath(t), exited: make(chan error, 1), stderr: &bytes.Buffer{}}
	e.cmd = exec.Command(bin, append([]string{"emulate", "--data", t.TempDir(), "--socket", e.sock,
		"--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0"}, args...)...)
	stdout, _ := e.cmd.StdoutPipe()
	e.cmd.Stderr = e.stderr
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.exited <- e.cmd.Wait() }()
	t.Cleanup(func() {
		e.cmd.Process.Kill()
		<-e.exited
	})
	lines := make(chan string, 32)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(30 * time.Second)
	for e.uiURL == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("herald emulate ended early:\n%s", e.stderr.String())
			}
			if u, found := strings.CutPrefix(l, "herald emulate: start screen "); found {
				e.uiURL, e.uiKey, _ = strings.Cut(u, ui.KeyFragment)
			}
		case <-deadline:
			t.Fatalf("no start screen line:\n%s", e.stderr.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	return e
}

// cli runs a herald client command against the emulator.
func (e *emulatorProc) cli(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(append(args, "--socket", e.sock), &out, &errb)
	return code, out.String(), errb.String()
}

// TestEmulateProcess runs `herald emulate` as a real process and drives one
// of its phones with the CLI's --device.
func TestEmulateProcess(t *testing.T) {
	e := startEmulator(t, "--devices", "2", "--ui-host", "herald.test")
	sock, uiURL, cmd, exited, stderr := e.sock, e.uiURL, e.cmd, e.exited, e.stderr
	cli := e.cli
	var uri string
	testenv.Eventually(t, 20*time.Second, "a channel opened on phone-0002", func() bool {
		code, out, _ := cli("open", "demo", "--toast", "--device", "phone-0002")
		uri = strings.TrimSpace(out)
		return code == 0 && strings.HasPrefix(uri, "http://127.0.0.1:")
	})
	req, _ := http.NewRequest(http.MethodPost, uri, bytes.NewReader((&mpns.Toast{Text1: "Hello", Text2: "two"}).XML()))
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
	testenv.Eventually(t, 10*time.Second, "the toast on phone-0002", func() bool {
		code, out, _ := cli("toasts", "--json", "--device", "phone-0002")
		return code == 0 && strings.Contains(out, `"text1": "Hello"`)
	})
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"toasts", "--json", "--device", "phone-0001"}, 0, "[]"},
		// The app id belongs to the user whose process opened it.
		{[]string{"channels", "--device", "phone-0002"}, 0, "demo  " + me.Username},
		{[]string{"channels", "--json", "--device", "phone-0002"}, 0, `"owner_uid": ` + me.Uid},
		{[]string{"channels", "--device", "phone-0001"}, 0, "APP"},
		{[]string{"status", "--device", "phone-0009"}, 1, `unknown device "phone-0009"`},
	}
	for _, tt := range tests {
		code, out, errs := cli(tt.args...)
		if code != tt.code || !strings.Contains(out+errs, tt.contains) {
			t.Errorf("herald %v: %d %q %q", tt.args, code, out, errs)
		}
	}

	// The start screen's address, key included, is its user's over the
	// socket; without the key the page's API answers nothing.
	if code, out, errs := cli("ui-url", "--device", "phone-0002"); code != 0 || strings.TrimSpace(out) != uiURL+"?phone=phone-0002"+ui.KeyFragment+e.uiKey {
		t.Errorf("herald ui-url --device phone-0002: %d %q %q, want %s?phone=phone-0002%s%s", code, out, errs, uiURL, ui.KeyFragment, e.uiKey)
	}
	r, err := http.Get(uiURL + "api/phones")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("the UI's phones without the key: %d, want 401", r.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodGet, uiURL+"api/phones", nil)
	req.Header.Set("Authorization", "Bearer "+e.uiKey)
	r, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var phones []struct{ Name string }
	json.NewDecoder(r.Body).Decode(&phones)
	r.Body.Close()
	if len(phones) != 2 || phones[1].Name != "phone-0002" {
		t.Fatalf("phones %+v", phones)
	}

	// The UI answers its own address and the --ui-host name, nothing else
	// (a name rebound to 127.0.0.1 by another site's DNS).
	for _, tt := range []struct {
		host   string
		status int
	}{{"", 200}, {"herald.test", 200}, {"evil.example", 421}} {
		req, _ := http.NewRequest(http.MethodGet, uiURL+"api/phones", nil)
		req.Header.Set("Authorization", "Bearer "+e.uiKey)
		if tt.host != "" {
			req.Host = tt.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("UI with Host %q: %d, want %d", tt.host, resp.StatusCode, tt.status)
		}
	}

	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		exited <- err
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("herald emulate did not stop on SIGTERM")
	}
	if _, err := os.Stat(sock); err == nil {
		t.Errorf("socket %s left behind", sock)
	}
}

// sendRaw posts a raw notification to uri and returns the HTTP status and
// the MPNS notification and device statuses.
func sendRaw(t *testing.T, uri string) (code int, notification, device string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, uri, strings.NewReader("ping"))
	req.Header.Set(mpns.HeaderNotificationClass, "3")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(mpns.HeaderNotificationStatus), resp.Header.Get(mpns.HeaderDeviceConnectionStatus)
}

// TestEmulateServiceSettings: herald emulate hands --queue-depth,
// --inactive-after and --daily-quota to its embedded service, so that a
// tester reaches QueueFull, 412 and 406 with the emulator alone.
func TestEmulateServiceSettings(t *testing.T) {
	t.Run("queue depth and inactive", func(t *testing.T) {
		e := startEmulator(t, "--devices", "1", "--queue-depth", "2", "--inactive-after", "1s")
		var uri string
		testenv.Eventually(t, 20*time.Second, "a channel", func() bool {
			code, out, _ := e.cli("open", "demo", "--device", "phone-0001")
			uri = strings.TrimSpace(out)
			return code == 0 && strings.HasPrefix(uri, "http://")
		})
		resp, err := uiPost(t, e.uiURL, e.uiKey, "api/connectivity?phone=phone-0001", `{"online":false}`)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("connectivity: %d", resp.StatusCode)
		}
		// Until the service sees the phone go, notifications may still
		// reach it; from then on they queue, two at most.
		accepted := 0
		testenv.Eventually(t, 10*time.Second, "TempDisconnected", func() bool {
			code, n, dev := sendRaw(t, uri)
			if code == http.StatusOK && n == mpns.StatusReceived && dev == mpns.DeviceTempDisconnected {
				accepted++
			}
			return dev == mpns.DeviceTempDisconnected
		})
		var full bool
		for range 3 {
			code, n, _ := sendRaw(t, uri)
			switch {
			case code == http.StatusOK && n == mpns.StatusQueueFull:
				full = true
			case code == http.StatusOK && n == mpns.StatusReceived:
				accepted++
			case code == http.StatusPreconditionFailed:
				t.Fatalf("412 before the queue filled")
			}
		}
		if !full || accepted > 2 {
			t.Fatalf("queue full %v after %d queued while away, want QueueFull after at most 2", full, accepted)
		}
		testenv.Eventually(t, 10*time.Second, "412 once away longer than --inactive-after", func() bool {
			code, n, dev := sendRaw(t, uri)
			return code == http.StatusPreconditionFailed && n == mpns.StatusDropped && dev == mpns.DeviceInactive
		})
	})
	t.Run("daily quota", func(t *testing.T) {
		e := startEmulator(t, "--devices", "1", "--daily-quota", "2")
		var uri string
		testenv.Eventually(t, 20*time.Second, "a channel", func() bool {
			code, out, _ := e.cli("open", "demo", "--device", "phone-0001")
			uri = strings.TrimSpace(out)
			return code == 0 && strings.HasPrefix(uri, "http://")
		})
		for i := range 2 {
			if code, n, _ := sendRaw(t, uri); code != http.StatusOK {
				t.Fatalf("notification %d: %d %s", i+1, code, n)
			}
		}
		if code, _, _ := sendRaw(t, uri); code != http.StatusNotAcceptable {
			t.Fatalf("third notification with --daily-quota 2: %d, want 406", code)
		}
	})
	t.Run("refused", func(t *testing.T) {
		for _, args := range [][]string{
			{"--queue-depth", "0"},
			{"--inactive-after", "-1s"},
			{"--daily-quota", "0"},
			{"--daily-quota", "-2"},
			{"--service", "http://127.0.0.1:1", "--queue-depth", "5"},
		} {
			var out, errb bytes.Buffer
			if code := run(append([]string{"emulate"}, args...), &out, &errb); code != 2 || errb.Len() == 0 {
				t.Errorf("emulate %v: exit %d, stderr %q; want 2 and a reason", args, code, errb.String())
			}
		}
	})
}

// uiPost sends a change to the start screen as its page does: with the
// cookie and token of a session it starts first.
func uiPost(t *testing.T, base, key, path, body string) (*http.Response, error) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	sreq, _ := http.NewRequest(http.MethodGet, base+strings.TrimPrefix(ui.SessionPath, "/"), nil)
	sreq.Header.Set(ui.KeyHeader, key)
	resp, err := client.Do(sreq)
	if err != nil {
		return nil, err
	}
	var session struct{ Token string }
	err = json.NewDecoder(resp.Body).Decode(&session)
	resp.Body.Close()
	if err != nil || session.Token == "" {
		t.Fatalf("UI session: %d %v", resp.StatusCode, err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(ui.TokenHeader, session.Token)
	return client.Do(req)
}
