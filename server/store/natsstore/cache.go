package natsstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// channelCache is every channel as this node last heard of it, kept by a
// watch on the channels bucket, so that finding a channel by token (on
// every notification's path) reads memory. As with watched, the cache
// answers only for a channel it learned of at least copyTrust ago; a
// channel changed since is read from the bucket, and a token the cache
// does not know is looked up through the bucket's index (a channel
// created on another node may not have reached the watch yet).
type channelCache struct {
	mu      sync.RWMutex
	byKey   map[string]channelRec // c.<channel> → channel
	byToken map[string]string     // token → c.<channel>
	revs    map[string]uint64     // c.<channel> → revision of byKey's entry
	learned map[string]time.Time  // c.<channel> → when byKey's entry came
	// floor holds, for a channel this node has just written, the
	// revision the watch must reach before the cache answers for it
	// again, so this node never reads back less than it wrote.
	floor map[string]uint64
	w     jetstream.KeyWatcher
}

func (s *Store) watchChannels(ctx context.Context) error {
	// Open's context ends when Open returns; the watch must not.
	w, err := s.channels.Watch(context.WithoutCancel(ctx), "c.*")
	if err != nil {
		return fmt.Errorf("natsstore: watching channels: %w", err)
	}
	c := &channelCache{byKey: map[string]channelRec{}, byToken: map[string]string{}, revs: map[string]uint64{},
		learned: map[string]time.Time{}, floor: map[string]uint64{}, w: w}
	s.cache = c
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for e := range w.Updates() {
			if e == nil {
				continue // the end of what the bucket held when the watch began
			}
			c.apply(e)
		}
	}()
	return nil
}

func (c *channelCache) apply(e jetstream.KeyValueEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.floor[e.Key()]; ok {
		if e.Revision() < f {
			return
		}
		delete(c.floor, e.Key())
	}
	c.dropLocked(e.Key())
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	var r channelRec
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return // looked up in the bucket, which reports the error
	}
	c.byKey[e.Key()] = r
	c.byToken[r.Token] = e.Key()
	c.revs[e.Key()] = e.Revision()
	c.learned[e.Key()] = time.Now()
}

func (c *channelCache) dropLocked(key string) {
	if old, ok := c.byKey[key]; ok {
		delete(c.byToken, old.Token)
		delete(c.byKey, key)
		delete(c.revs, key)
		delete(c.learned, key)
	}
}

// written tells the cache this node wrote the channel at revision rev:
// until the watch brings that revision, lookups go to the bucket.
func (c *channelCache) written(key string, rev uint64) {
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

// byTok finds a channel by token: ok when the cache knows it, trusted
// when it learned of it at least copyTrust ago.
func (c *channelCache) byTok(tok string) (r channelRec, ok, trusted bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	key := c.byToken[tok]
	r, ok = c.byKey[key]
	if !ok || r.Token != tok {
		return channelRec{}, false, false
	}
	return r, true, time.Since(c.learned[key]) >= copyTrust
}
