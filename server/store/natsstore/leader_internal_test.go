package natsstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/internal/natstest"
)

// A bucket's gets ask the stream's leader (STREAM.MSG.GET), never a
// direct get any replica may answer, and read a key as jetstream's Get
// does: its value and revision, and not found once deleted or purged.
func TestLeaderGets(t *testing.T) {
	ns := natstest.Run(t)
	nc, js := natstest.Connect(t, ns.ClientURL())
	legacy, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "leadertest", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := leaderGets{KeyValue: kv, js: legacy}

	// The requests the gets make, seen beside the server that answers.
	direct, err := nc.SubscribeSync("$JS.API.DIRECT.GET.>")
	if err != nil {
		t.Fatal(err)
	}
	leader, err := nc.SubscribeSync("$JS.API.STREAM.MSG.GET.KV_leadertest")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	rev, err := kv.Put(ctx, "a", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := b.Get(ctx, "a")
	if err != nil || string(e.Value()) != "one" || e.Revision() != rev || e.Key() != "a" || e.Bucket() != "leadertest" ||
		e.Operation() != jetstream.KeyValuePut {
		t.Fatalf("get a: %+v, %v; want one at revision %d", e, err, rev)
	}
	if _, err := b.Get(ctx, "never"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("get never: %v, want ErrKeyNotFound", err)
	}
	if err := kv.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "a"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("get a deleted: %v, want ErrKeyNotFound", err)
	}
	if _, err := kv.Put(ctx, "b", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "b"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("get b purged: %v, want ErrKeyNotFound", err)
	}

	// The copies of the requests reach this connection beside their
	// answers, not before them: a round trip to the server after the last
	// one has them all delivered.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := leader.Pending(); n != 4 {
		t.Errorf("%d gets asked the stream's leader, want 4", n)
	}
	if n, _, _ := direct.Pending(); n != 0 {
		t.Errorf("%d direct gets, want none", n)
	}
}
