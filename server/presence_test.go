package server_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/server"
)

// elsewhere is a cluster's presence as a node sees it when every device
// it does not hold is held by another node.
type elsewhere struct{ held atomic.Bool }

func (p *elsewhere) Hold(context.Context, string) (uint64, error) { return 1, nil }
func (p *elsewhere) Release(context.Context, string) error        { return nil }
func (p *elsewhere) HeldElsewhere(context.Context, string) (bool, error) {
	return p.held.Load(), nil
}
func (p *elsewhere) OnTakeover(func(string, uint64)) {}

// A device connected to another node of a cluster is Connected, whatever
// this node's store says of when it was last seen: its session there
// refreshes that only now and then. Only a device on no node is
// inactive (412).
func TestConnectedElsewhereIsNeverInactive(t *testing.T) {
	p := &elsewhere{}
	ts := startService(t, server.Config{Presence: p, InactiveAfter: time.Hour})
	d := ts.enrol()
	_, uri := d.register("app", false, false)
	d.disconnect()
	ts.clk.Advance(2 * time.Hour)
	p.held.Store(true)
	wantStatus(t, post(t, uri, mpns.KindRaw, "", "there", []byte("x")), 200, "Received", "Connected")
	p.held.Store(false)
	wantStatus(t, post(t, uri, mpns.KindRaw, "", "gone", []byte("x")), 412, "Dropped", "InActive")
}
