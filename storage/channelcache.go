package storage

import (
	"slices"
	"sync"
)

// channelCache keeps channels by URI token, so the notification path does
// not query SQLite for a channel on every POST. Every change to a channel
// goes through ServiceStore, which drops the entry after committing it.
//
// A lookup that missed reads the database and then fills the cache; a
// change committed between that read and the fill would leave a stale
// entry. gen closes the gap: every drop bumps it, and a fill is kept only
// if no drop happened since its read began.
type channelCache struct {
	mu      sync.RWMutex
	byToken map[string]Channel
	tokenOf map[string]string // channel id → token, to drop by id
	gen     uint64
	max     int
}

func newChannelCache(max int) *channelCache {
	return &channelCache{byToken: map[string]Channel{}, tokenOf: map[string]string{}, max: max}
}

// get returns a copy of the cached channel, so callers cannot change the
// cache through its slices.
func (c *channelCache) get(token string) (Channel, bool) {
	c.mu.RLock()
	ch, ok := c.byToken[token]
	c.mu.RUnlock()
	if ok {
		ch.Domains, ch.Pinned = slices.Clone(ch.Domains), slices.Clone(ch.Pinned)
	}
	return ch, ok
}

// generation is read before a database lookup whose result may be put.
func (c *channelCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put caches ch unless the cache changed since gen or is full; a full
// cache only costs lookups, so it does not evict.
func (c *channelCache) put(gen uint64, ch Channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || len(c.byToken) >= c.max {
		return
	}
	ch.Domains, ch.Pinned = slices.Clone(ch.Domains), slices.Clone(ch.Pinned)
	c.byToken[ch.Token] = ch
	c.tokenOf[ch.ID] = ch.Token
}

// drop forgets the channel with this id.
func (c *channelCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if tok, ok := c.tokenOf[id]; ok {
		delete(c.byToken, tok)
		delete(c.tokenOf, id)
	}
}
