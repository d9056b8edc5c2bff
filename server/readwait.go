//go:build linux && !386

package server

import (
	"bufio"
	"fmt"
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

// maxPingFrame is the longest ping a device may send: a 2-byte header, the
// 4-byte mask and at most 125 bytes of payload (RFC 6455 §5.5).
const maxPingFrame = 2 + 4 + 125

// takePing takes a ping off the socket if one is there whole, at the
// head of what the device sent, and returns its payload. Anything else,
// a partial ping included, is left for NextReader, which reads it as it
// would have. The socket is at a frame boundary here: gorilla buffers
// nothing (idle) and read every frame it returned to its end.
func (w readWait) takePing() (string, bool, error) {
	if !w.idle() {
		return "", false, nil
	}
	var b [maxPingFrame]byte
	var payload string
	var took bool
	var err error
	w.raw.Read(func(fd uintptr) bool {
		got, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), maxPingFrame,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if errno != 0 {
			return true
		}
		p, size, isPing := pingFrame(b[:got])
		if !isPing {
			return true
		}
		payload = string(p)
		// Take exactly the ping: what follows it stays on the socket.
		n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(size),
			syscall.MSG_DONTWAIT, 0, 0)
		if errno != 0 || int(n) != size {
			// Cannot happen (the bytes were just peeked at), but a part
			// taken would leave the stream mid-frame: end the session.
			err = fmt.Errorf("taking a ping off the socket: %d of %d bytes (%v)", n, size, errno)
		}
		took = true
		return true
	})
	return payload, took && err == nil, err
}

// pingFrame reads b as one whole ping frame from a device (RFC 6455 §5.2):
// FIN set, no RSV bits, opcode 9, masked, at most 125 bytes of payload,
// all present. It returns the unmasked payload (in b's own bytes) and the
// frame's length; ok is false for anything else.
func pingFrame(b []byte) (payload []byte, size int, ok bool) {
	if len(b) < 6 || b[0] != 0x80|websocket.PingMessage || b[1]&0x80 == 0 {
		return nil, 0, false
	}
	n := int(b[1] & 0x7f)
	if n > 125 || len(b) < 6+n {
		return nil, 0, false
	}
	mask := b[2:6]
	payload = b[6 : 6+n]
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return payload, 6 + n, true
}
