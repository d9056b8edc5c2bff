//go:build linux && !386

package server

import (
	"bufio"
	"reflect"
	"syscall"
	"unsafe"

	"github.com/gorilla/websocket"
)

// readWait lets a session's read loop wait for the device's next bytes in
// a shallow frame of its own before calling gorilla's NextReader, whose
// frames (advanceFrame, the bufio fill, the socket read) are deep enough
// that a goroutine parked beneath them keeps a 4 KiB stack for as long as
// the device is idle. Waiting through the socket's RawConn keeps the
// parked stack under a quarter of 2 KiB, so the collector halves it.
//
// Bytes gorilla has already buffered are not on the socket: waiting for
// the socket then would hold a frame the device has sent until it sends
// another. So the wait is skipped whenever gorilla's reader holds
// anything, which needs a look at its unexported reader; if gorilla ever
// renames it, readWait does nothing and the loop parks in NextReader as
// before (TestReadWaitFindsReader fails so that it is noticed).
type readWait struct {
	raw syscall.RawConn
	br  *bufio.Reader
}

// brOffset is where gorilla's Conn keeps its *bufio.Reader, or -1.
var brOffset = func() uintptr {
	f, ok := reflect.TypeOf(websocket.Conn{}).FieldByName("br")
	if !ok || f.Type != reflect.TypeOf((*bufio.Reader)(nil)) {
		return ^uintptr(0)
	}
	return f.Offset
}()

func newReadWait(conn *websocket.Conn) readWait {
	if brOffset == ^uintptr(0) {
		return readWait{}
	}
	sc, ok := conn.NetConn().(syscall.Conn)
	if !ok {
		return readWait{}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return readWait{}
	}
	br := *(**bufio.Reader)(unsafe.Add(unsafe.Pointer(conn), brOffset))
	if br == nil {
		return readWait{}
	}
	return readWait{raw: raw, br: br}
}

// idle says whether gorilla holds nothing of the device's yet, so that
// the read loop may hand over to a park; false when waits are off.
func (w readWait) idle() bool { return w.raw != nil && w.br.Buffered() == 0 }

// wait returns once the socket is readable, its read deadline passed, or
// it is closed; at once if gorilla holds buffered bytes. Whatever it
// returns for, NextReader then reads (or fails) as it would have.
func (w readWait) wait() {
	if !w.idle() {
		return
	}
	w.raw.Read(func(fd uintptr) bool {
		// Peek rather than assume: the poller reports readiness once per
		// arrival, and bytes that came before this wait began are waiting
		// in the socket already. EAGAIN alone parks; anything else (data,
		// end of stream, an error) is NextReader's to read.
		return !peekWouldBlock(fd)
	})
}

// peekWouldBlock says whether the socket has nothing to read yet. It calls
// recvfrom directly: syscall.Recvfrom's address buffer alone would take
// much of the small stack the wait is for.
func peekWouldBlock(fd uintptr) bool {
	var b [1]byte
	_, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return errno == syscall.EAGAIN || errno == syscall.EINTR
}
