//go:build darwin || freebsd

package daemon

import (
	"net"

	"golang.org/x/sys/unix"
)

// SocketPeerUID returns the user of the process that connected c, a Unix
// socket, as the kernel recorded it at connect time (LOCAL_PEERCRED).
func SocketPeerUID(c net.Conn) (uint32, error) {
	return peerUIDFrom(c, func(fd int) (uint32, error) {
		cred, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		if err != nil {
			return 0, err
		}
		return cred.Uid, nil
	})
}
