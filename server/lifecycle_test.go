package server_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldpush/herald/clock"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/wire"
)

// TestServiceStopsInOrder runs a whole service as heraldsvc does
// (NewService, then Run until its context ends) and stops it while a
// device is connected with an ack the store holds lazily: the session's
// end still writes the device's last-seen (the store stops after the
// sessions), and the lazy ack is applied as the store's work stops
// (before the store is closed). Both are read back from the database
// after Run has returned.
func TestServiceStopsInOrder(t *testing.T) {
	file := filepath.Join(t.TempDir(), "svc.db")
	// An hour: the ack can only land by the stop's flush.
	st, err := sqlitestore.Open(t.Context(), file, sqlitestore.Options{GroupCommit: true, AckDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(epoch)
	svc, err := server.NewService(t.Context(), server.ServeConfig{Listen: "127.0.0.1:0", Store: st,
		Server: server.Config{Clock: clk, Logger: testenv.Logger(t)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(ctx) }()

	d := mustDial(t, svc.URL())
	r := d.open("app", "")
	mustPost(t, http.DefaultClient, r.URI)
	n := d.nextNotification()
	d.send(wire.Ack{Type: wire.TypeAck, Seq: n.Seq})
	// Frames are handled in order: once the bind is answered, the ack
	// has been handed to the store.
	if res := d.bind(r.ChannelID, false, false); res.Code != "" {
		t.Fatalf("bind: %+v", res)
	}
	clk.Advance(time.Hour)
	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}

	again := testenv.SQLiteStore(t, file, sqlitestore.Options{GroupCommit: true})
	if p, err := again.Pending(t.Context(), d.id, 0); err != nil || len(p) != 0 {
		t.Errorf("after the stop: pending %+v %v, want none (the lazy ack applied)", p, err)
	}
	dev, err := again.Device(t.Context(), d.id)
	if err != nil {
		t.Fatal(err)
	}
	if !dev.LastSeen.Equal(clk.Now()) {
		t.Errorf("last seen %v, want %v (written as the session ended)", dev.LastSeen, clk.Now())
	}
	t.Logf("stopped with a session and a lazy ack: queue empty, last seen %v", dev.LastSeen.UTC())
}
