//go:build !linux && !darwin && !freebsd

package daemon

import "net"

// SocketPeerUID reports ErrNoPeerCred: this OS does not tell a Unix
// socket's peer, so the socket's permissions alone decide who may connect.
func SocketPeerUID(net.Conn) (uint32, error) { return 0, ErrNoPeerCred }
