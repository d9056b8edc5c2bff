package storetest

import (
	"context"
	"testing"

	"github.com/heraldpush/herald/server/store"
)

// Start runs s's background work (store.Runner) for the test, as the
// service's owner would, and when the test ends stops it, waits for it and
// closes s. It returns s.
func Start[S store.Store](t testing.TB, s S) S {
	t.Helper()
	r, ok := any(s).(store.Runner)
	if !ok {
		t.Cleanup(func() { s.Close() })
		return s
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("store Run: %v", err)
		}
		s.Close()
	})
	return s
}
