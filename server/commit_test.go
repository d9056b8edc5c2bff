package server_test

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// heldReads holds every Pending call while held is set, as a store
// answering slowly under a reconnect storm would.
type heldReads struct {
	server.Store
	mu      sync.Mutex
	held    chan struct{} // nil: reads pass
	entered chan struct{} // told of each held read
}

func (h *heldReads) hold() {
	h.mu.Lock()
	h.held = make(chan struct{})
	h.mu.Unlock()
}

func (h *heldReads) release() {
	h.mu.Lock()
	close(h.held)
	h.held = nil
	h.mu.Unlock()
}

func (h *heldReads) Pending(ctx context.Context, deviceID string, after uint64) ([]store.Queued, error) {
	h.mu.Lock()
	held := h.held
	h.mu.Unlock()
	if held != nil {
		h.entered <- struct{}{}
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return h.Store.Pending(ctx, deviceID, after)
}

// A session reading its queue from a slow store must not hold up the
// store's committer: the commit hook hands the notification over without
// waiting for the session, so the sender is answered while the read is
// still held, and the device then gets the notification once.
func TestCommitHookDoesNotWaitForSessionRead(t *testing.T) {
	h := &heldReads{entered: make(chan struct{}, 1)}
	ts := startServiceWrapped(t, server.Config{}, sqlitestore.Options{GroupCommit: true}, func(st server.Store) server.Store {
		h.Store = st
		return h
	})
	d := ts.enrol()
	_, uri := d.register("app", true, false)
	d.disconnect()

	// The reconnected session's writer reads the queue, and the read is
	// held.
	h.hold()
	d.connect(0)
	select {
	case <-h.entered:
	case <-time.After(frameWait):
		t.Fatal("the session never read its queue")
	}

	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, uri, bytes.NewReader(toastBody("while reading")))
		req.Header.Set(mpns.HeaderTarget, mpns.KindToast.Target())
		req.Header.Set(mpns.HeaderNotificationClass, "2")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	select {
	case code := <-answered:
		if code != http.StatusOK {
			t.Fatalf("sender got %d, want 200", code)
		}
	case <-time.After(frameWait):
		h.release()
		t.Fatal("the commit waited for the session's queue read")
	}

	h.release()
	got := d.expectNotify()
	if len(got) != 1 || got[0].Seq != 1 {
		t.Fatalf("got %v, want the one notification, seq 1", seqs(got))
	}
	d.barrier() // and nothing more: the read and the hook did not both send it
}
