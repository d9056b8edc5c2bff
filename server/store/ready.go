package store

import "errors"

// ErrNotReady: the store is still waiting for its backend (servers not up
// yet, buckets not created); calls fail with it, wrapped with
// ErrUnavailable, until Ready reports nil.
var ErrNotReady = errors.New("store: not ready")

// Readiness is implemented by a store that can be handed to the service
// before it is usable, so that the service listens (and says it is not
// ready) while the store waits for its servers. A store without it is
// ready once opened.
type Readiness interface {
	// Ready returns nil when the store can be used, else an error wrapping
	// ErrNotReady whose text names what it waits for (never an address
	// or a credential: it is shown to anyone who asks).
	Ready() error
}
