package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
)

const (
	childEnv  = "HERALD_PEER_CHILD_SOCKET"
	otherUID  = 65534 // nobody
	socketGID = 4242
)

// TestPeerChild is the other user's process of TestAppOwnershipOtherUser:
// it opens mail and games over the socket, asks for the start screen's
// address, and prints the statuses.
func TestPeerChild(t *testing.T) {
	sock := os.Getenv(childEnv)
	if sock == "" {
		t.Skip("run by TestAppOwnershipOtherUser as another user")
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	out := map[string]int{}
	for _, a := range []string{"mail", "games"} {
		resp, err := c.Post("http://herald/v1/apps/"+a+"/channel", "application/json", bytes.NewReader([]byte(`{}`)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out[a] = resp.StatusCode
	}
	resp, err := c.Get("http://herald/v1/ui")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	out["ui"] = resp.StatusCode
	json.NewEncoder(os.Stdout).Encode(out)
}

// TestAppOwnershipOtherUser is the real thing: a process of another Unix
// user, on a group-shared socket, with nothing injected. The kernel names
// it; it is refused the app root opened and gets its own.
func TestAppOwnershipOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a process as another user")
	}
	svc := testenv.Service(t, "", server.ServeConfig{})
	d := testenv.StartDaemon(t, daemon.Config{Service: svc.URL(), SocketGroup: strconv.Itoa(socketGID)})
	ctx := context.Background()
	if _, err := d.Client.Open(ctx, "mail", app.OpenRequest{}); err != nil {
		t.Fatal(err)
	}
	d.SetStartScreen("http://127.0.0.1:8791/#key=secret")
	// The other user reaches the socket (its directory is the test's,
	// 0700) and the test binary.
	if err := os.Chmod(filepath.Dir(d.Socket), 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "hc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "daemon.test")
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestPeerChild$", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = []string{childEnv + "=" + d.Socket, "HOME=" + dir, "GOCOVERDIR=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: otherUID, Gid: socketGID}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s\n%s", err, out, stderr.String())
	}
	var got map[string]int
	line, _, _ := bytes.Cut(out, []byte("\n"))
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatalf("child said %q: %v", out, err)
	}
	if got["mail"] != http.StatusForbidden || got["games"] != http.StatusOK || got["ui"] != http.StatusForbidden {
		t.Fatalf("user %d: mail %d (want 403), games %d (want 200), the start screen's address %d (want 403)", otherUID, got["mail"], got["games"], got["ui"])
	}
	chans, err := d.Client.Channels(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]string{}
	for _, c := range chans {
		owners[c.App] = fmt.Sprint(*c.OwnerUID)
	}
	if owners["games"] != strconv.Itoa(otherUID) || owners["mail"] != "0" {
		t.Fatalf("owners %v", owners)
	}
	t.Logf("user %d, a real process on the group-shared socket: root's mail answered %d, its own games %d, the start screen's address %d; owners %v",
		otherUID, got["mail"], got["games"], got["ui"], owners)
}
