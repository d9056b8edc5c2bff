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

// readBody reads a request body of at most limit bytes while holding one of
// its address's read slots; with none left it reads nothing and returns
// errReadsBusy.
func (s *Server) readBody(r *http.Request, limit int64) ([]byte, error) {
	release, ok := s.guard.reads.acquire(senderAddr(r))
	if !ok {
		return nil, errReadsBusy
	}
	defer release()
	return io.ReadAll(io.LimitReader(r.Body, limit))
}
