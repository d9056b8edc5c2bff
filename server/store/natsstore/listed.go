package natsstore

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A count (a device's channels, the devices enrolled from one address),
// like the listing of a device's channels to delete them, is a listing of
// index keys, which nats.go reads through an R1 ordered consumer, and
// NATS places that consumer on any replica of the bucket, afresh for
// every listing: in R3 it may be the follower left out of the quorum that
// acknowledged this node's last write, a moment behind. So the store
// keeps a short record of this node's own creations and deletions of
// listed keys, and lists again while the listing misses one of them.
// The record, not a revision, is what a listing is checked against: a
// listing says nothing of how far its replica has got beyond the keys it
// names. (A get, by contrast, asks the stream's leader: leader.go.)

// listTrust is how long one of this node's writes is held against the
// listings: far above how far a replica lags (milliseconds), and what a
// count waits at most for a key another node changed after this one
// wrote it (a channel created here and deleted elsewhere at once), which
// no listing will reflect. A write is kept for the whole of it, not
// dropped once a listing has shown it: the next listing may be served by
// another replica, the one still behind.
const listTrust = 2 * time.Second

// listAgain is how long list waits before it lists again.
const listAgain = 5 * time.Millisecond

// ownKeys is this node's creations and deletions of listed keys in the
// last listTrust, by the filter that lists them. The zero value is ready.
type ownKeys struct {
	mu sync.Mutex
	// now is the clock the writes are aged by (time.Now if nil): replica
	// lag is real time, whatever clock the service runs on.
	now      func() time.Time
	byFilter map[string]map[string]ownWrite
	// swept is when writes past listTrust were last dropped from every
	// filter, including those no count has asked about since.
	swept time.Time
}

type ownWrite struct {
	put bool // created, or (false) deleted
	at  time.Time
}

func (o *ownKeys) clock() time.Time {
	if o.now != nil {
		return o.now()
	}
	return time.Now()
}

// wrote records that this node, its write acknowledged, created (put) or
// deleted key, which filter lists.
func (o *ownKeys) wrote(filter, key string, put bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.clock()
	if now.Sub(o.swept) >= listTrust {
		// At most once per listTrust, so the record stays as small as the
		// writes of the last moments at the cost of one pass over them.
		o.swept = now
		for f, keys := range o.byFilter {
			for k, w := range keys {
				if now.Sub(w.at) >= listTrust {
					delete(keys, k)
				}
			}
			if len(keys) == 0 {
				delete(o.byFilter, f)
			}
		}
	}
	if o.byFilter == nil {
		o.byFilter = map[string]map[string]ownWrite{}
	}
	keys := o.byFilter[filter]
	if keys == nil {
		keys = map[string]ownWrite{}
		o.byFilter[filter] = keys
	}
	keys[key] = ownWrite{put: put, at: now}
}

// misses reports whether a listing of filter lacks a key this node
// created, or holds one it deleted, within the last listTrust.
func (o *ownKeys) misses(filter string, listed map[string]bool) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	keys := o.byFilter[filter]
	now := o.clock()
	for k, w := range keys {
		if now.Sub(w.at) >= listTrust {
			delete(keys, k)
			continue
		}
		if listed[k] != w.put {
			return true
		}
	}
	if keys != nil && len(keys) == 0 {
		delete(o.byFilter, filter)
	}
	return false
}

// list lists the keys of kv matching filter, never missing one this
// node created nor holding one it deleted (own) in the last listTrust:
// while a listing misses one of those, it lists again, and it gives the
// last listing when ctx ends. Other nodes' writes of the last moments may
// be missed, as on any replica.
func list(ctx context.Context, kv jetstream.KeyValue, filter string, own *ownKeys) (map[string]bool, error) {
	for {
		listed, err := listKeys(ctx, kv, filter)
		if err != nil || !own.misses(filter, listed) {
			return listed, err
		}
		t := time.NewTimer(listAgain)
		select {
		case <-ctx.Done():
			t.Stop()
			return listed, nil
		case <-t.C:
		}
	}
}

// count is how many keys list lists.
func count(ctx context.Context, kv jetstream.KeyValue, filter string, own *ownKeys) (int, error) {
	listed, err := list(ctx, kv, filter, own)
	return len(listed), err
}

func listKeys(ctx context.Context, kv jetstream.KeyValue, filter string) (map[string]bool, error) {
	l, err := kv.ListKeysFiltered(ctx, filter)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer l.Stop()
	listed := map[string]bool{}
	for k := range l.Keys() {
		listed[k] = true
	}
	return listed, nil
}
