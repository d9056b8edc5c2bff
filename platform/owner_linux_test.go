package platform

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The clash errors name the process holding the socket or port: here, the
// test itself.
func TestOwners(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "h.sock")
	if _, live := SocketOwner(sock); live {
		t.Fatal("SocketOwner of a missing socket: live")
	}
	ln, err := ListenSocket(sock, "")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	owner, live := SocketOwner(sock)
	if !live || owner.Pid != os.Getpid() || owner.Command == "" {
		t.Fatalf("SocketOwner = %+v, %v; want pid %d with its command", owner, live, os.Getpid())
	}
	_, err = ListenSocket(sock, "")
	if err == nil || !strings.Contains(err.Error(), owner.String()) {
		t.Fatalf("second ListenSocket: %v, want it to name %s", err, owner)
	}

	for _, network := range []string{"tcp4", "tcp6"} {
		addr := "127.0.0.1:0"
		if network == "tcp6" {
			addr = "[::1]:0"
		}
		tl, err := net.Listen(network, addr)
		if err != nil {
			t.Logf("%s: %v", network, err)
			continue
		}
		defer tl.Close()
		_, err = net.Listen(network, tl.Addr().String())
		if !IsAddrInUse(err) {
			t.Errorf("%s: second listen: %v, want address in use", network, err)
		}
		if got := PortOwner(tl.Addr().String()); got.Pid != os.Getpid() {
			t.Errorf("%s: PortOwner(%s) = %+v, want pid %d", network, tl.Addr(), got, os.Getpid())
		}
	}
	if got := PortOwner("127.0.0.1:1"); got.Pid != 0 || got.String() != "another process" {
		t.Errorf("PortOwner of a closed port = %+v", got)
	}
}
