package natsstore

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// leaderGets is a bucket whose gets its stream's leader answers.
//
// nats.go reads a key with a direct get, which any replica of the bucket
// may answer once it has caught up with the stream at some point, and a
// follower can fall behind again: a write is acknowledged once a quorum
// has it, and the replica left out answers with what was there before
// for as long as it trails. The store reads a key only when its watched
// copy cannot answer, which is when the key changed a moment ago (a
// channel bound just before its first notification, on another node) or
// when what it reads decides a compare-and-set; a stale answer there is
// the one that matters. The leader has every acknowledged write, so gets
// go to it (JetStream's STREAM.MSG.GET, not DIRECT.GET); watches and
// listings still read through consumers, which may trail (watched.go,
// listed.go).
type leaderGets struct {
	jetstream.KeyValue
	js nats.JetStreamContext
}

func (b leaderGets) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	bucket := b.Bucket()
	m, err := b.js.GetLastMsg("KV_"+bucket, "$KV."+bucket+"."+key, nats.Context(ctx))
	if errors.Is(err, nats.ErrMsgNotFound) {
		return nil, jetstream.ErrKeyNotFound
	}
	if err != nil {
		return nil, err
	}
	e := &leaderEntry{bucket: bucket, key: key, value: m.Data, rev: m.Sequence, created: m.Time, op: jetstream.KeyValuePut}
	// A deletion, a purge or an expiry leaves a marker as the key's last
	// message; jetstream's Get answers those as not found too.
	switch m.Header.Get("KV-Operation") {
	case "DEL":
		e.op = jetstream.KeyValueDelete
	case "PURGE":
		e.op = jetstream.KeyValuePurge
	}
	if m.Header.Get(jetstream.MarkerReasonHeader) != "" {
		e.op = jetstream.KeyValuePurge
	}
	if e.op != jetstream.KeyValuePut {
		return nil, jetstream.ErrKeyNotFound
	}
	return e, nil
}

type leaderEntry struct {
	bucket, key string
	value       []byte
	rev         uint64
	created     time.Time
	op          jetstream.KeyValueOp
}

var _ jetstream.KeyValueEntry = (*leaderEntry)(nil)

func (e *leaderEntry) Bucket() string                  { return e.bucket }
func (e *leaderEntry) Key() string                     { return e.key }
func (e *leaderEntry) Value() []byte                   { return e.value }
func (e *leaderEntry) Revision() uint64                { return e.rev }
func (e *leaderEntry) Created() time.Time              { return e.created }
func (e *leaderEntry) Delta() uint64                   { return 0 }
func (e *leaderEntry) Operation() jetstream.KeyValueOp { return e.op }
