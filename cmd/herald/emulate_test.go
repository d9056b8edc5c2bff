package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/mpns"
)

// TestEmulateProcess runs `herald emulate` as a real process and drives one
// of its phones with the CLI's --device.
func TestEmulateProcess(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "herald")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sock := testenv.SocketPath(t)
	cmd := exec.Command(bin, "emulate", "--devices", "2", "--data", t.TempDir(), "--socket", sock,
		"--listen", "127.0.0.1:0", "--ui", "127.0.0.1:0", "--ui-host", "herald.test")
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	lines := make(chan string, 32)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var uiURL string
	deadline := time.After(30 * time.Second)
	for uiURL == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("herald emulate ended early:\n%s", stderr.String())
			}
			if u, found := strings.CutPrefix(l, "herald emulate: start screen "); found {
				uiURL = u
			}
		case <-deadline:
			t.Fatalf("no start screen line:\n%s", stderr.String())
		}
	}
	go func() {
		for range lines {
		}
	}()

	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(append(args, "--socket", sock), &out, &errb)
		return code, out.String(), errb.String()
	}
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

	r, err := http.Get(uiURL + "api/phones")
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
