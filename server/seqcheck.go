package server

import (
	"errors"
	"fmt"

	"github.com/heraldpush/herald/server/store"
)

// errSeqAhead: a device reported applying a sequence number the service
// never gave it.
var errSeqAhead = errors.New("sequence number never given to this device")

// checkLastSeq refuses a hello's last_seq above the highest number the
// device was given (nextSeq-1; 0 for a device being enrolled). The store
// cannot tell a device ahead of it from one lying, and what a device
// reports is acknowledged in the store's shared transactions, so it is
// refused here, for that connection only, before it reaches them.
func checkLastSeq(lastSeq, nextSeq uint64) error {
	highest := uint64(0)
	if nextSeq > 0 {
		highest = nextSeq - 1
	}
	if lastSeq > highest || lastSeq > store.MaxSeq {
		return fmt.Errorf("last_seq %d: %w (highest %d)", lastSeq, errSeqAhead, highest)
	}
	return nil
}
