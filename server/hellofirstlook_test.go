package server_test

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// readSpy counts queue reads and can run something right after a device
// read, and keeps the store's promise of current device reads
// (store.CurrentDevices), which a plain wrapper would hide.
type readSpy struct {
	server.Store
	mu        sync.Mutex
	pending   int
	afterRead func() // run once, after the next Device call has read
}

func (s *readSpy) DevicesCurrent() bool { return s.Store.(store.CurrentDevices).DevicesCurrent() }

func (s *readSpy) Pending(ctx context.Context, deviceID string, after uint64) ([]store.Queued, error) {
	s.mu.Lock()
	s.pending++
	s.mu.Unlock()
	return s.Store.Pending(ctx, deviceID, after)
}

func (s *readSpy) Device(ctx context.Context, id string) (store.Device, error) {
	d, err := s.Store.Device(ctx, id)
	s.mu.Lock()
	f := s.afterRead
	s.afterRead = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
	return d, err
}

func (s *readSpy) reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// A returning device that has applied everything it was given gets its
// session without a read of its queue (firstlook.go), and still every
// notification: one queued while it was away, and one committed after
// its device read and before its session became live, which the commit
// hook told to no session.
func TestHelloFirstLook(t *testing.T) {
	for _, tc := range []struct {
		name string
		// away posts while the device is away; between posts between its
		// device read and its session going live.
		away, between bool
		read          bool // the session reads its queue
	}{
		{"nothing queued", false, false, false},
		{"queued while away", true, false, true},
		{"committed between the device read and going live", false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spy := &readSpy{}
			ts := startServiceWrapped(t, server.Config{}, sqlitestore.Options{GroupCommit: true}, func(st server.Store) server.Store {
				spy.Store = st
				return spy
			})
			d := ts.enrol()
			_, uri := d.register("app", true, false)
			wantStatus(t, post(t, uri, mpns.KindToast, "2", "first", toastBody("first")), 200, "Received", "Connected")
			got := d.expectNotify()
			d.ack(got[0].Seq)
			waitQueueEmpty(t, ts, d.id)
			d.disconnect()

			var want string
			if tc.away {
				want = "away"
				wantStatus(t, post(t, uri, mpns.KindToast, "2", want, toastBody(want)), 200, "Received", "TempDisconnected")
			}
			posted := make(chan posted, 1)
			if tc.between {
				want = "between"
				spy.mu.Lock()
				// On the hello's goroutine: the sender's answer is
				// checked by the test's.
				spy.afterRead = func() { posted <- postFrom(uri, want) }
				spy.mu.Unlock()
			}
			before := spy.reads()
			d.connect(got[0].Seq)
			if tc.between {
				r := <-posted
				if r.err != nil {
					t.Fatal(r.err)
				}
				wantStatus(t, r.response, 200, "Received", "TempDisconnected")
			}
			if want != "" {
				if n := d.expectNotify(); len(n) != 1 || n[0].MessageID != want {
					t.Fatalf("got %v, want %q alone", messageIDs(n), want)
				}
			}
			d.barrier()
			if read := spy.reads() > before; read != tc.read {
				t.Fatalf("queue read at hello: %v, want %v", read, tc.read)
			}
			// What comes next reaches the session either way, once.
			wantStatus(t, post(t, uri, mpns.KindToast, "2", "next", toastBody("next")), 200, "Received", "Connected")
			if n := d.expectNotify(); len(n) != 1 || n[0].MessageID != "next" {
				t.Fatalf("then got %v, want next alone", messageIDs(n))
			}
			d.barrier()
		})
	}
}

type posted struct {
	response
	err error
}

// postFrom posts a toast with the message id id, from any goroutine.
func postFrom(uri, id string) posted {
	req, err := http.NewRequest(http.MethodPost, uri, bytes.NewReader(toastBody(id)))
	if err != nil {
		return posted{err: err}
	}
	req.Header.Set(mpns.HeaderTarget, mpns.KindToast.Target())
	req.Header.Set(mpns.HeaderNotificationClass, "2")
	req.Header.Set(mpns.HeaderMessageID, id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return posted{err: err}
	}
	resp.Body.Close()
	h := resp.Header
	return posted{response: response{Code: resp.StatusCode, Notification: h.Get(mpns.HeaderNotificationStatus),
		Device: h.Get(mpns.HeaderDeviceConnectionStatus), MessageID: h.Get(mpns.HeaderMessageID)}}
}
