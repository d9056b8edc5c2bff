package store

import (
	"slices"
	"sync"
)

// TokenCache keeps channels by URI token, so the notification path does
// not ask the database for a channel on every POST. It suits a backend
// through which every change to a channel goes, which drops the entry
// after committing the change. (A backend shared by several nodes keeps a
// watched copy instead, which also learns of other nodes' changes.)
//
// A lookup that missed reads the database and then fills the cache; a
// change committed between that read and the fill would leave a stale
// entry. gen closes the gap: every drop bumps it, and a fill is kept only
// if no drop happened since its read began.
type TokenCache struct {
	mu      sync.RWMutex
	byToken map[string]Channel
	tokenOf map[string]string // channel id → token, to drop by id
	gen     uint64
	max     int
}

// NewTokenCache returns a cache of at most max channels.
func NewTokenCache(max int) *TokenCache {
	return &TokenCache{byToken: map[string]Channel{}, tokenOf: map[string]string{}, max: max}
}

// Get returns a copy of the cached channel, so callers cannot change the
// cache through its slices.
func (c *TokenCache) Get(token string) (Channel, bool) {
	c.mu.RLock()
	ch, ok := c.byToken[token]
	c.mu.RUnlock()
	if ok {
		ch.Domains, ch.Pinned = slices.Clone(ch.Domains), slices.Clone(ch.Pinned)
	}
	return ch, ok
}

// Generation is read before a database lookup whose result may be put.
func (c *TokenCache) Generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// Put caches ch unless the cache changed since gen or is full; a full
// cache only costs lookups, so it does not evict.
func (c *TokenCache) Put(gen uint64, ch Channel) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || len(c.byToken) >= c.max {
		return
	}
	ch.Domains, ch.Pinned = slices.Clone(ch.Domains), slices.Clone(ch.Pinned)
	c.byToken[ch.Token] = ch
	c.tokenOf[ch.ID] = ch.Token
}

// Drop forgets the channel with this id.
func (c *TokenCache) Drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if tok, ok := c.tokenOf[id]; ok {
		delete(c.byToken, tok)
		delete(c.tokenOf, id)
	}
}
