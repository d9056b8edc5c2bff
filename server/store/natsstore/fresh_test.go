package natsstore

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// Every caller gets a value from a read that began after its call did,
// and callers that overlap share reads.
func TestFreshReadsAfterTheCall(t *testing.T) {
	var started atomic.Uint64
	gate, inFlight := make(chan struct{}), make(chan struct{})
	f := fresh[uint64]{read: func(context.Context) (uint64, error) {
		n := started.Add(1)
		if n == 1 {
			close(inFlight)
			<-gate // the first read stays in flight while the rest arrive
		}
		return n, nil
	}}
	const callers = 200
	var wg sync.WaitGroup
	first := make(chan uint64, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		v, _ := f.get(context.Background())
		first <- v
	}()
	<-inFlight
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			before := started.Load()
			v, err := f.get(context.Background())
			if err != nil || v <= before {
				t.Errorf("got read %d (err %v), want one started after read %d", v, err, before)
			}
		}()
	}
	// Every caller waits behind the first read before it lands: they
	// arrived while it was in flight, so one read after it serves them all.
	for {
		f.mu.Lock()
		n := f.waiting
		f.mu.Unlock()
		if n == callers {
			break
		}
		runtime.Gosched()
	}
	close(gate)
	wg.Wait()
	if v := <-first; v != 1 {
		t.Fatalf("the first caller got read %d, want 1", v)
	}
	if n := started.Load(); n != 2 {
		t.Fatalf("%d reads for %d callers, want 2 (the one in flight and one after it)", n, callers+1)
	}
}

// A waiter whose context ends stops waiting; the read goes on for others.
func TestFreshWaiterCancelled(t *testing.T) {
	gate, inFlight := make(chan struct{}), make(chan struct{})
	f := fresh[int]{read: func(context.Context) (int, error) {
		close(inFlight)
		<-gate
		return 7, nil
	}}
	done := make(chan int)
	go func() {
		v, _ := f.get(context.Background())
		done <- v
	}()
	<-inFlight
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.get(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v, want context.Canceled", err)
	}
	close(gate)
	if v := <-done; v != 7 {
		t.Fatalf("leader got %d, want 7", v)
	}
}
