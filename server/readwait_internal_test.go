//go:build linux && !386

package server

import "testing"

// TestReadWaitFindsReader: the read loop's shallow wait needs gorilla's
// buffered reader; without it every idle device's read goroutine keeps a
// 4 KiB stack again (BenchmarkIdleDevices), silently.
func TestReadWaitFindsReader(t *testing.T) {
	if brOffset == ^uintptr(0) {
		t.Fatal("gorilla's websocket.Conn has no br *bufio.Reader field: readwait.go needs updating")
	}
}
