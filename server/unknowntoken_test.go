package server_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// floodedStore is the store as a flood of made-up channel URIs leaves it:
// each lookup that finds nothing takes lookupCost on the service's clock
// (the disk and the connection pool are busy), the others take no time.
type floodedStore struct {
	server.Store
	clk        *clock.Fake
	lookupCost time.Duration
}

func (s *floodedStore) ChannelByToken(ctx context.Context, token string) (store.Channel, error) {
	ch, err := s.Store.ChannelByToken(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		s.clk.Advance(s.lookupCost)
	}
	return ch, err
}

// TestUnknownTokenFloodDoesNotShed floods the MPNS endpoint with made-up
// channel URIs from many loopback addresses (so no per-address limit
// applies), each lookup slower than --slow-store. A lookup that finds no
// channel is no sender's work: it must not make the service shed load, so
// a legitimate sender is answered 200 Received, never 503, and its device
// gets every notification.
func TestUnknownTokenFloodDoesNotShed(t *testing.T) {
	const (
		addresses = 50
		perAddr   = 10
		sent      = 10
	)
	var flooded *floodedStore
	ts := startServiceWrapped(t, server.Config{}, sqlitestore.Options{GroupCommit: true}, func(st server.Store) server.Store {
		flooded = &floodedStore{Store: st, lookupCost: 2 * server.DefaultSlowStore}
		return flooded
	})
	flooded.clk = ts.clk
	d := ts.enrol()
	_, uri := d.register("victim", true, false)

	answers := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for a := range addresses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := fromAddr(fmt.Sprintf("127.0.%d.%d", 1+a/200, 2+a%200))
			for i := range perAddr {
				u := ts.http.URL + server.ThrottledPath + fmt.Sprintf("madeup%02d%02dAAAAAAAAAAAAAAAAAAAAAAAAAA", a, i)
				r := postMPNS(t, c, http.MethodPost, u, mpnsHeaders("toast", "2", ""), toastXML)
				mu.Lock()
				answers[r.code]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if answers[http.StatusNotFound] != addresses*perAddr {
		t.Fatalf("made-up channels answered %v; want %d × 404", answers, addresses*perAddr)
	}

	received := 0
	for i := range sent {
		id := fmt.Sprintf("legit-%d", i)
		r := post(t, uri, mpns.KindToast, "2", id, toastBody(id))
		if r.Code != http.StatusOK || r.Notification != mpns.StatusReceived {
			t.Fatalf("legitimate sender after the flood, notification %d: %d %s; want 200 Received", i, r.Code, r.Notification)
		}
		received++
	}
	got := d.collect(sent)
	t.Logf("unknown-token flood: %d addresses × %d made-up URIs, each lookup %v: %v; legitimate sender: sent %d, 200 Received %d, delivered %d",
		addresses, perAddr, flooded.lookupCost, answers, sent, received, len(got))
}
