package platform

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// Owner is the process holding a socket or port, as far as the OS tells:
// Pid 0 when it does not (another user's process, or an OS without the
// means).
type Owner struct {
	Pid     int
	Command string // its command line, shortened
}

func (o Owner) String() string {
	switch {
	case o.Pid == 0:
		return "another process"
	case o.Command == "":
		return fmt.Sprintf("pid %d", o.Pid)
	}
	return fmt.Sprintf("pid %d (%s)", o.Pid, o.Command)
}

// SocketOwner reports whether something accepts connections on the Unix
// socket at path, and which process.
func SocketOwner(path string) (Owner, bool) {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return Owner{}, false
	}
	defer c.Close()
	return ownerOf(peerPid(c)), true
}

// PortOwner returns the process listening on the TCP address addr
// (host:port).
func PortOwner(addr string) Owner {
	return ownerOf(tcpListenerPid(addr))
}

// IsAddrInUse reports whether err is a listen failing because the address
// is taken.
func IsAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

func ownerOf(pid int) Owner {
	if pid <= 0 {
		return Owner{}
	}
	o := Owner{Pid: pid}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil {
		o.Command = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
		if len(o.Command) > 120 {
			o.Command = o.Command[:117] + "..."
		}
	}
	return o
}
