//go:build darwin || freebsd

package daemon

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// SocketPeerUID returns the user of the process that connected c, a Unix
// socket, as the kernel recorded it at connect time (LOCAL_PEERCRED).
func SocketPeerUID(c net.Conn) (uint32, error) {
	raw, err := rawConn(c)
	if err != nil {
		return 0, err
	}
	var cred *unix.Xucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	}); err != nil {
		return 0, fmt.Errorf("daemon: peer credentials: %w", err)
	}
	if serr != nil {
		return 0, fmt.Errorf("daemon: peer credentials: %w", serr)
	}
	return cred.Uid, nil
}
