package natsstore

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// watched is this node's copy of some keys of a bucket, kept by a watch,
// so that the notification path reads memory instead of asking NATS. The
// watch lags the bucket by moments, so the copy answers only for a key it
// learned of at least copyTrust ago: a key written again since would have
// reached it by then, and a key changed a moment ago (a channel bound
// just before its first notification) is read from the bucket. A key this
// node wrote is never read back older than it wrote it (written).
type watched[T any] struct {
	mu   sync.RWMutex
	vals map[string]T
	revs map[string]uint64
	// learned is when the copy took each key's value.
	learned map[string]time.Time
	// floor holds, for a key this node has just written, the revision the
	// watch must reach before the copy answers for it again.
	floor  map[string]uint64
	decode func([]byte) (T, error)
	watchOpts[T]
	// deletedAt is when the watch brought each deleted key's deletion.
	// Its revision stays in revs for keepDeleted (for a compare-and-set,
	// and so that written never waits for a revision the watch brought
	// already), then is forgotten: devices and channels deleted for good
	// would otherwise hold memory on every node until it restarts.
	deletedAt map[string]time.Time
	w         jetstream.KeyWatcher
	// For /metrics (metrics.go): when the watch last brought an event,
	// whether it has brought all the bucket held when it began, and, for
	// the last event since, how long after its write it came.
	lastEvent time.Time
	live      bool
	lag       time.Duration
}

// watchOpts are what a copy does beyond keeping the values.
type watchOpts[T any] struct {
	// changed, if set, is told of every value the copy drops or takes,
	// under its lock (to keep an index of its own).
	changed func(key string, old, new *T)
	// gone, if set, is told of every deletion the watch brings, under
	// the copy's lock.
	gone func(key string)
	// keepDeleted is how long a deleted key's revision is kept;
	// deletedKeep if zero.
	keepDeleted time.Duration
}

// deletedKeep is how long a copy keeps a deleted key's revision by
// default: far longer than any write of this node takes to come back on
// the watch.
const deletedKeep = 10 * time.Minute

// watch starts a copy of the keys matching filter; the copy stops when
// the store closes. ctx bounds only starting it: a watch ends with the
// context it was made with, and Open's ends when Open returns.
func watch[T any](ctx context.Context, s *Store, kv jetstream.KeyValue, filter string, decode func([]byte) (T, error),
	opts watchOpts[T]) (*watched[T], error) {
	w, err := kv.Watch(context.WithoutCancel(ctx), filter)
	if err != nil {
		return nil, err
	}
	c := newWatched(decode, opts)
	c.w = w
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sweep := time.NewTicker(c.keepDeleted / 2)
		defer sweep.Stop()
		for {
			select {
			case now := <-sweep.C:
				c.sweep(now)
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e == nil { // the end of what the bucket held when the watch began
					c.caughtUp()
					continue
				}
				c.apply(e)
			case <-s.stop:
				w.Stop()
				return
			}
		}
	}()
	return c, nil
}

func newWatched[T any](decode func([]byte) (T, error), opts watchOpts[T]) *watched[T] {
	if opts.keepDeleted <= 0 {
		opts.keepDeleted = deletedKeep
	}
	return &watched[T]{vals: map[string]T{}, revs: map[string]uint64{}, learned: map[string]time.Time{}, floor: map[string]uint64{},
		deletedAt: map[string]time.Time{}, decode: decode, watchOpts: opts}
}

func (c *watched[T]) caughtUp() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live, c.lastEvent = true, time.Now()
}

func (c *watched[T]) apply(e jetstream.KeyValueEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	c.lastEvent = now
	if c.live {
		// Written by the NATS server's clock: across hosts this includes
		// their clocks' skew, so it is only a lower bound of zero.
		c.lag = max(now.Sub(e.Created()), 0)
	}
	key := e.Key()
	if f, ok := c.floor[key]; ok {
		if e.Revision() < f {
			return
		}
		delete(c.floor, key)
	}
	c.dropLocked(key)
	if e.Operation() != jetstream.KeyValuePut {
		c.revs[key] = e.Revision() // the deletion's, for a compare-and-set
		c.deletedAt[key] = now
		if c.gone != nil {
			c.gone(key)
		}
		return
	}
	v, err := c.decode(e.Value())
	if err != nil {
		return // read from the bucket, which reports the error
	}
	c.vals[key], c.revs[key], c.learned[key] = v, e.Revision(), time.Now()
	if c.changed != nil {
		c.changed(key, nil, &v)
	}
}

func (c *watched[T]) dropLocked(key string) {
	if old, ok := c.vals[key]; ok && c.changed != nil {
		c.changed(key, &old, nil)
	}
	delete(c.vals, key)
	delete(c.revs, key)
	delete(c.learned, key)
	delete(c.deletedAt, key)
}

// sweep forgets the revisions of keys deleted keepDeleted before now.
func (c *watched[T]) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	before := now.Add(-c.keepDeleted)
	for key, at := range c.deletedAt {
		if at.Before(before) {
			delete(c.revs, key)
			delete(c.deletedAt, key)
		}
	}
}

// copyTrust is how long the copy must have held a key's value before it
// answers for it: far above the watch's lag (milliseconds), and far below
// how often a channel or device changes.
const copyTrust = 2 * time.Second

// get answers from the copy: known is false when the copy holds nothing
// for the key, learned of it less than copyTrust ago, or holds less than
// this node wrote.
func (c *watched[T]) get(key string) (v T, known bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if _, waiting := c.floor[key]; waiting {
		return v, false
	}
	if time.Since(c.learned[key]) < copyTrust {
		return v, false
	}
	v, known = c.vals[key]
	return v, known
}

// entry is the copy's value and revision for the key, however new, for a
// compare-and-set (which the bucket checks): ok with a zero value for a
// deleted key, rev zero for a key the copy never saw.
func (c *watched[T]) entry(key string) (v T, rev uint64, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok = c.vals[key]
	return v, c.revs[key], ok
}

// held reports whether the copy holds a value for the key, however new.
func (c *watched[T]) held(key string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.vals[key]
	return ok
}

// waiting reports whether this node wrote the key at a revision the watch
// has not brought yet.
func (c *watched[T]) waiting(key string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.floor[key]
	return ok
}

// written tells the copy this node wrote key at revision rev: until the
// watch brings that revision, get answers unknown.
func (c *watched[T]) written(key string, rev uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.revs[key] >= rev {
		return
	}
	c.dropLocked(key)
	if rev > c.floor[key] {
		c.floor[key] = rev
	}
}

// deleted tells the copy this node deleted key, whose last revision was
// rev: until the watch brings the deletion, get answers unknown.
func (c *watched[T]) deleted(key string, rev uint64) { c.written(key, rev+1) }

// len is how many keys the copy holds.
func (c *watched[T]) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.vals)
}

// stats is what /metrics shows of the copy: the keys it holds, how long
// ago its watch last brought an event (or caught up), and the lag of the
// last event it brought since.
func (c *watched[T]) stats() (keys int, age, lag time.Duration, live bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.lastEvent.IsZero() {
		age = time.Since(c.lastEvent)
	}
	return len(c.vals), age, c.lag, c.live
}
