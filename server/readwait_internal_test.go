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

func FuzzPingFrame(f *testing.F) {
	f.Add([]byte{0x89, 0x80, 1, 2, 3, 4})
	f.Add([]byte{0x89, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'b' ^ 2})
	f.Add([]byte{0x89, 0x82, 1, 2, 3, 4, 'h' ^ 1})          // partial
	f.Add([]byte{0x89, 0x02, 'h', 'b'})                     // unmasked
	f.Add([]byte{0x81, 0x82, 1, 2, 3, 4, 'h' ^ 1, 'b' ^ 2}) // text
	f.Add([]byte{0x09, 0x80, 1, 2, 3, 4})                   // no FIN
	f.Add([]byte{0x89, 0xfe, 0, 126, 1, 2, 3, 4})           // extended length
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte(nil), b...)
		p, size, ok := pingFrame(b)
		if !ok {
			return
		}
		if orig[0] != 0x89 || orig[1]&0x80 == 0 || size > len(orig) || size != 6+len(p) || len(p) > 125 {
			t.Fatalf("pingFrame(%x) took %d bytes, payload %x", orig, size, p)
		}
		for i := range p {
			if p[i]^orig[2+i%4] != orig[6+i] {
				t.Fatalf("pingFrame(%x): payload %x not unmasked", orig, p)
			}
		}
	})
}
