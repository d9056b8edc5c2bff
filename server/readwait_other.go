//go:build !linux || 386

package server

import "github.com/gorilla/websocket"

// readWait does nothing where the socket is not peeked at (readwait.go
// calls recvfrom directly, which linux/386 reaches only through
// socketcall): the read loop parks in NextReader.
type readWait struct{}

func newReadWait(*websocket.Conn) readWait { return readWait{} }

func (readWait) wait() {}

func (readWait) idle() bool { return false }

func (readWait) takePing() (string, bool, error) { return "", false, nil }
