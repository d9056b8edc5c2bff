package server

import (
	"errors"
	"io"
	"net/http"
	"sync"
)

// readSlots counts the request bodies being read from each address. A body
// normally comes with its headers and is read at once; one that is held
// back keeps its slot until it arrives or the read timeout ends it, so a
// script sending headers and no body uses up its own address's slots and
// nobody else's.
type readSlots struct {
	max int
	mu  sync.Mutex
	n   map[string]int // address → bodies being read; absent at 0
}

// acquire takes a read slot for addr, or reports that addr has none left.
func (rs *readSlots) acquire(addr string) (release func(), ok bool) {
	if rs.max < 0 {
		return func() {}, true
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.n == nil {
		rs.n = map[string]int{}
	}
	if rs.n[addr] >= rs.max {
		return nil, false
	}
	rs.n[addr]++
	return func() {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		// Deleted at zero, so the map holds only addresses being read
		// from and cannot grow with every address ever seen.
		if rs.n[addr]--; rs.n[addr] <= 0 {
			delete(rs.n, addr)
		}
	}, true
}

// errReadsBusy: the address already has MaxBodyReadsPerSource bodies
// being read.
var errReadsBusy = errors.New("too many requests from this address still sending their bodies")

// exactBodyMax is the longest body readBody reads into a buffer of the
// declared Content-Length: a notification's payload at its largest
// (webpush.MaxBodySize), with room to spare.
const exactBodyMax = 8 << 10

// readBody reads a request body of at most limit bytes while holding one of
// its address's read slots; with none left it reads nothing and returns
// errReadsBusy.
func (s *Server) readBody(r *http.Request, limit int64) ([]byte, error) {
	release, ok := s.guard.reads.acquire(senderAddr(r))
	if !ok {
		return nil, errReadsBusy
	}
	defer release()
	if n := r.ContentLength; n >= 0 && n < limit && n <= exactBodyMax {
		// The sender said how long its body is (every MPNS library
		// does): read exactly that, into one buffer of its size.
		// io.ReadAll starts at 512 bytes and doubles, and then reads
		// once more to find the end. A body that ends early fails as it
		// would have (io.ErrUnexpectedEOF); one beyond MaxBodyBytes
		// fails in the MaxBytesReader admit put around it. Only a
		// notification's size is taken at its word: a larger buffer
		// (a multicast's) is grown as its bytes come, so that a sender
		// cannot make the service hold memory for bytes it never sends.
		body := make([]byte, n)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, err
		}
		return body, nil
	}
	return io.ReadAll(io.LimitReader(r.Body, limit))
}
