package natsstore

import (
	"context"
	"errors"
	"testing"
)

// A caller waiting for a device's turn gives up with its context and
// leaves the turn to the next; a key nobody holds is forgotten.
func TestTurns(t *testing.T) {
	var tr turns
	unlockA, err := tr.lock(context.Background(), "dev")
	if err != nil {
		t.Fatal(err)
	}
	// Another device's turn is its own.
	unlockB, err := tr.lock(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	unlockB()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.lock(ctx, "dev"); !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting for a held turn with a cancelled context: %v", err)
	}
	got := make(chan error)
	go func() {
		unlock, err := tr.lock(context.Background(), "dev")
		if err == nil {
			unlock()
		}
		got <- err
	}()
	unlockA()
	if err := <-got; err != nil {
		t.Fatalf("the next caller: %v", err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.keys) != 0 {
		t.Fatalf("%d keys left with nobody holding them", len(tr.keys))
	}
}
