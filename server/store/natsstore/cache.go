package natsstore

import (
	"context"
	"encoding/json"
	"time"
)

// channelCache is the channels bucket's c.* keys as this node last heard
// of them (a watched copy), indexed by token, so that finding a channel
// by token (on every notification's path) reads memory. As with any
// watched copy, it answers only for a channel it learned of at least
// copyTrust ago; a channel changed since is read from the bucket, and a
// token it does not know is looked up through the bucket's index (a
// channel created on another node may not have reached the watch yet).
type channelCache struct {
	*watched[channelRec]
	byToken map[string]string // token → c.<channel>, under the copy's lock
}

func (s *Store) watchChannels(ctx context.Context) error {
	c := &channelCache{byToken: map[string]string{}}
	w, err := watch(ctx, s, s.channels, "c.*", func(b []byte) (channelRec, error) {
		var r channelRec
		err := json.Unmarshal(b, &r)
		return r, err
	}, watchOpts[channelRec]{changed: func(key string, old, new *channelRec) {
		if old != nil && c.byToken[old.Token] == key {
			delete(c.byToken, old.Token)
		}
		if new != nil {
			c.byToken[new.Token] = key
		}
	}})
	if err != nil {
		return err
	}
	c.watched = w
	s.cache = c
	return nil
}

// byTok finds a channel by token: ok when the cache knows it, trusted
// when it learned of it at least copyTrust ago.
func (c *channelCache) byTok(tok string) (r channelRec, ok, trusted bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	key := c.byToken[tok]
	r, ok = c.vals[key]
	if !ok || r.Token != tok {
		return channelRec{}, false, false
	}
	return r, true, time.Since(c.learned[key]) >= copyTrust
}
