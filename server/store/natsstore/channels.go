package natsstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/server/store"
)

// Channels: c.<channel> in the channels bucket, t.<hash of token> and
// a.<device>.<hash of app> naming it.

type channelRec struct {
	ID          string   `json:"id"`
	DeviceID    string   `json:"d"`
	App         string   `json:"a"`
	Name        string   `json:"n"`
	Token       string   `json:"t"`
	ServiceName string   `json:"s,omitempty"`
	Toast       bool     `json:"toast,omitempty"`
	Tile        bool     `json:"tile,omitempty"`
	Domains     []string `json:"dom,omitempty"`
	Pinned      []string `json:"pin,omitempty"`
	Created     int64    `json:"c"`
	VAPIDKey    string   `json:"v,omitempty"`
}

func recOf(c store.Channel) channelRec {
	return channelRec{ID: c.ID, DeviceID: c.DeviceID, App: c.App, Name: c.Name, Token: c.Token, ServiceName: c.ServiceName,
		Toast: c.Toast, Tile: c.Tile, Domains: c.Domains, Pinned: c.Pinned, Created: c.CreatedAt.UnixMilli(), VAPIDKey: c.VAPIDKey}
}

func (r channelRec) channel() store.Channel {
	nonNil := func(v []string) []string {
		if v == nil {
			return []string{}
		}
		return v
	}
	return store.Channel{ID: r.ID, DeviceID: r.DeviceID, App: r.App, Name: r.Name, Token: r.Token, ServiceName: r.ServiceName,
		Toast: r.Toast, Tile: r.Tile, Domains: nonNil(r.Domains), Pinned: nonNil(r.Pinned), CreatedAt: time.UnixMilli(r.Created),
		VAPIDKey: r.VAPIDKey}
}

func channelKey(id string) string            { return "c." + token(id) }
func tokenKey(tok string) string             { return "t." + hash(tok) }
func appKey(deviceID, app string) string     { return "a." + token(deviceID) + "." + hash(app) }
func appFilter(deviceID string) string       { return "a." + token(deviceID) + ".*" }
func notFound(what string) error             { return fmt.Errorf("natsstore: %s: %w", what, store.ErrNotFound) }
func (s *Store) subjectOf(dev string) string { return s.subject + token(dev) }

func (s *Store) getChannel(ctx context.Context, id string) (channelRec, uint64, error) {
	e, err := get(ctx, s.channels, channelKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return channelRec{}, 0, notFound("channel")
	}
	if err != nil {
		return channelRec{}, 0, unavailable("channel", err)
	}
	var r channelRec
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return channelRec{}, 0, fmt.Errorf("natsstore: channel %s: %w", id, err)
	}
	return r, e.Revision(), nil
}

// lookup follows an index key to the channel it names.
func (s *Store) lookup(ctx context.Context, key string) (channelRec, error) {
	if err := s.check(); err != nil {
		return channelRec{}, err
	}
	e, err := get(ctx, s.channels, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return channelRec{}, notFound("channel")
	}
	if err != nil {
		return channelRec{}, unavailable("channel", err)
	}
	r, _, err := s.getChannel(ctx, string(e.Value()))
	return r, err
}

// ChannelByToken finds the channel a URI token names.
func (s *Store) ChannelByToken(ctx context.Context, tok string) (store.Channel, error) {
	if err := s.check(); err != nil {
		return store.Channel{}, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var r channelRec
	var err error
	switch cached, ok, trusted := s.cache.byTok(tok); {
	case trusted:
		r = cached
	case ok:
		// Changed a moment ago: the watch may not have brought the
		// latest change yet (a binding just before the first
		// notification), so the channel is read.
		r, _, err = s.getChannel(ctx, cached.ID)
	default:
		r, err = s.lookup(ctx, tokenKey(tok))
	}
	if err != nil {
		return store.Channel{}, err
	}
	// An index entry left by a rotation or deletion that did not finish.
	if r.Token != tok {
		return store.Channel{}, notFound("channel")
	}
	return r.channel(), nil
}

// Channel finds a channel by id.
func (s *Store) Channel(ctx context.Context, id string) (store.Channel, error) {
	if err := s.check(); err != nil {
		return store.Channel{}, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, _, err := s.getChannel(ctx, id)
	if err != nil {
		return store.Channel{}, err
	}
	return r.channel(), nil
}

// ChannelByApp finds the device's channel for app.
func (s *Store) ChannelByApp(ctx context.Context, deviceID, app string) (store.Channel, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, err := s.lookup(ctx, appKey(deviceID, app))
	if err != nil {
		return store.Channel{}, err
	}
	if r.DeviceID != deviceID || r.App != app {
		return store.Channel{}, notFound("channel")
	}
	return r.channel(), nil
}

// CountChannels counts the device's channels.
func (s *Store) CountChannels(ctx context.Context, deviceID string) (int, error) {
	if err := s.check(); err != nil {
		return 0, err // before s.channels is set, if not ready
	}
	return s.countKeys(ctx, s.channels, appFilter(deviceID))
}

// CreateChannel stores a new channel: its app index first (which makes a
// second channel for the app fail), then the channel, then its token,
// which is what makes it reachable by senders.
func (s *Store) CreateChannel(ctx context.Context, c store.Channel) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	ak := appKey(c.DeviceID, c.App)
	if _, err := s.channels.Create(ctx, ak, []byte(c.ID)); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return unavailable("create channel", err)
		}
		// Taken, unless by a channel whose creation never finished.
		e, gerr := s.channels.Get(ctx, ak)
		if gerr != nil {
			return unavailable("create channel", gerr)
		}
		if _, _, err := s.getChannel(ctx, string(e.Value())); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("natsstore: channel %s/%s: %w", c.DeviceID, c.App, store.ErrExists)
		}
		if _, err := s.channels.Update(ctx, ak, []byte(c.ID), e.Revision()); err != nil {
			return fmt.Errorf("natsstore: channel %s/%s: %w", c.DeviceID, c.App, store.ErrExists)
		}
	}
	s.own.wrote(appFilter(c.DeviceID), ak, true)
	b, _ := json.Marshal(recOf(c))
	if _, err := s.channels.Create(ctx, channelKey(c.ID), b); err != nil {
		if s.channels.Delete(ctx, ak) == nil {
			s.own.wrote(appFilter(c.DeviceID), ak, false)
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("natsstore: channel %s: %w", c.ID, store.ErrExists)
		}
		return unavailable("create channel", err)
	}
	if _, err := s.channels.Put(ctx, tokenKey(c.Token), []byte(c.ID)); err != nil {
		return unavailable("create channel", err)
	}
	return nil
}

// updateChannel changes a channel with compare-and-set.
func (s *Store) updateChannel(ctx context.Context, id string, change func(*channelRec)) (old channelRec, err error) {
	for {
		r, rev, err := s.getChannel(ctx, id)
		if err != nil {
			return channelRec{}, err
		}
		old = r
		change(&r)
		b, _ := json.Marshal(r)
		nrev, err := s.channels.Update(ctx, channelKey(id), b, rev)
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return channelRec{}, unavailable("update channel", err)
		}
		s.cache.written(channelKey(id), nrev)
		return old, nil
	}
}

// SetChannelToken rotates a channel's URI token: the new token is indexed
// before the channel takes it, and the old one dropped after, so the
// channel is reachable throughout by one of them.
func (s *Store) SetChannelToken(ctx context.Context, id, tok string) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if _, _, err := s.getChannel(ctx, id); err != nil {
		return err
	}
	if _, err := s.channels.Put(ctx, tokenKey(tok), []byte(id)); err != nil {
		return unavailable("set channel token", err)
	}
	old, err := s.updateChannel(ctx, id, func(r *channelRec) { r.Token = tok })
	if err != nil {
		return err
	}
	if old.Token != tok {
		if err := s.channels.Delete(ctx, tokenKey(old.Token)); err != nil {
			return unavailable("set channel token", err)
		}
	}
	return nil
}

// SetBindings replaces a channel's shell bindings.
func (s *Store) SetBindings(ctx context.Context, id string, toast, tile bool, domains, pinned []string) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.updateChannel(ctx, id, func(r *channelRec) {
		r.Toast, r.Tile, r.Domains, r.Pinned = toast, tile, domains, pinned
	})
	return err
}

// DeleteChannel removes a channel, its token first so its URI answers 404
// at once. Its queued notifications stay until acknowledged.
func (s *Store) DeleteChannel(ctx context.Context, id string) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, rev, err := s.getChannel(ctx, id)
	if err != nil {
		return err
	}
	// The deletion's revision is above the channel's.
	s.cache.deleted(channelKey(id), rev)
	for _, k := range []string{tokenKey(r.Token), appKey(r.DeviceID, r.App), channelKey(id)} {
		if err := s.channels.Delete(ctx, k); err != nil {
			return unavailable("delete channel", err)
		}
	}
	s.own.wrote(appFilter(r.DeviceID), appKey(r.DeviceID, r.App), false)
	return nil
}
