package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/platform"
)

// TestClashes starts herald run and herald emulate where the socket or a
// port is already held (by this test) and checks that each refusal names
// the holder's pid and the flag to change, instead of a bare "address
// already in use".
func TestClashes(t *testing.T) {
	bin := heraldBinary(t)
	heldSock := testenv.SocketPath(t)
	sl, err := platform.ListenSocket(heldSock, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	heldPort := tl.Addr().String()
	pid := fmt.Sprintf("pid %d", os.Getpid())
	if runtime.GOOS != "linux" { // only Linux tells who holds a socket or port
		pid = " by "
	}

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"run: socket", []string{"run", "--socket", heldSock, "--listen", "127.0.0.1:0"},
			[]string{heldSock, pid, "--socket PATH"}},
		{"run: service port", []string{"run", "--listen", heldPort},
			[]string{heldPort, pid, "--listen ADDR", "--service http://" + heldPort}},
		{"run: ui port", []string{"run", "--listen", "127.0.0.1:0", "--ui", heldPort},
			[]string{"start screen", heldPort, pid, "--ui ADDR"}},
		{"emulate: socket", []string{"emulate", "--socket", heldSock, "--listen", "127.0.0.1:0"},
			[]string{heldSock, pid, "--socket PATH"}},
		{"emulate: service port", []string{"emulate", "--listen", heldPort},
			[]string{heldPort, pid, "--listen ADDR"}},
		{"emulate: ui port", []string{"emulate", "--listen", "127.0.0.1:0", "--ui", heldPort},
			[]string{"start screen", heldPort, pid, "--ui ADDR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{}, tt.args...)
			if !slices.Contains(args, "--socket") {
				args = append(args, "--socket", filepath.Join(dir, "free.sock"))
			}
			args = append(args, "--data", filepath.Join(dir, "data"))
			if args[0] == "run" {
				args = append(args, "--config", filepath.Join(dir, "none.toml"))
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "HERALD_SOCKET=", "HERALD_UI=")
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("herald %v succeeded:\n%s", args, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
