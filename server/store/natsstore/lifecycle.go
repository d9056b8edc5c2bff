package natsstore

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/server/store"
)

// A device's end: retired (refused for good, its key kept to prove it) or
// deleted after being away too long.

// highestGiven is at least the highest number the device has been given:
// the stream's last number, read after the call began (a lazy ack purges
// without recording itself on the device, so neither the device's subject
// nor its acked number need hold it). A device may so claim any number
// the stream has given anyone, which can only skip its own queue.
func (s *Store) highestGiven(ctx context.Context, acked uint64) (uint64, error) {
	last, err := s.lastSeq.get(ctx)
	if err != nil {
		return 0, unavailable("stream state", err)
	}
	return max(last, acked), nil
}

// streamLast reads the stream's last number from its leader.
func (s *Store) streamLast(ctx context.Context) (uint64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	var last uint64
	err := retry(ctx, func(ctx context.Context) error {
		info, err := s.queue.Info(ctx)
		if err != nil {
			return err
		}
		last = info.State.LastSeq
		return nil
	})
	return last, err
}

// RetireDevice marks the device retired, deletes its channels and empties
// its queue. Each step is repeatable, so a retirement cut short by a
// failover is finished by calling it again.
func (s *Store) RetireDevice(ctx context.Context, id string, at time.Time) error {
	if err := s.updateDevice(ctx, id, func(r *deviceRec) bool {
		r.Retired = at.UnixMilli()
		return true
	}); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if err := s.deleteChannels(ctx, id); err != nil {
		return err
	}
	return s.purgeAll(ctx, id)
}

// deleteChannels deletes every channel of the device, tokens first.
func (s *Store) deleteChannels(ctx context.Context, deviceID string) error {
	// A channel this node created a moment ago is deleted too, whichever
	// replica lists them.
	keys, err := list(ctx, s.channels, appFilter(deviceID), &s.own)
	if err != nil {
		return unavailable("list channels", err)
	}
	for ak := range keys {
		e, err := get(ctx, s.channels, ak)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return unavailable("channel", err)
		}
		id := string(e.Value())
		r, rev, err := s.getChannel(ctx, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var drop []string
		if err == nil {
			// Never answered from the cache again, here.
			s.cache.deleted(channelKey(id), rev)
			drop = append(drop, tokenKey(r.Token))
		}
		drop = append(drop, ak, channelKey(id))
		for _, k := range drop {
			if err := s.channels.Delete(ctx, k); err != nil {
				return unavailable("delete channel", err)
			}
		}
		s.own.wrote(appFilter(deviceID), ak, false)
	}
	return nil
}

// ExpiredDevices returns up to limit ids of devices last seen before
// before. It reads every device: deleting the long-gone is hourly work.
func (s *Store) ExpiredDevices(ctx context.Context, before time.Time, limit int) ([]string, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	l, err := s.devices.ListKeysFiltered(ctx, "d.*")
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, unavailable("list devices", err)
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	l.Stop()
	var ids []string
	for _, k := range keys {
		if len(ids) >= limit {
			break
		}
		e, err := get(ctx, s.devices, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return ids, unavailable("device", err)
		}
		r, err := decodeDevice(e.Value())
		if err != nil || r.Seen >= before.UnixMilli() {
			continue
		}
		id := r.ID
		if id == "" {
			// Recorded before devices kept their id: the key is the id
			// unless it had to be hashed.
			id = strings.TrimPrefix(k, "d.")
			if strings.HasPrefix(id, "=") {
				continue
			}
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// DeleteDevice deletes the device if it was still last seen before
// seenBefore: the device's record goes first, on the revision that was
// checked, so a device seen meanwhile is kept; then its channels, queue
// and index.
func (s *Store) DeleteDevice(ctx context.Context, id string, seenBefore time.Time) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, rev, err := s.getDevice(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if r.Seen >= seenBefore.UnixMilli() {
		return false, nil
	}
	err = s.devices.Delete(ctx, deviceKey(id), jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return false, nil
	}
	if err != nil {
		return false, unavailable("delete device", err)
	}
	s.devCache.deleted(deviceKey(id), rev)
	if err := s.deleteChannels(ctx, id); err != nil {
		return true, err
	}
	if err := s.purgeAll(ctx, id); err != nil {
		return true, err
	}
	if err := s.devices.Delete(ctx, sourceKey(r.Source, id)); err != nil {
		return true, unavailable("delete device index", err)
	}
	s.own.wrote(sourceFilter(r.Source), sourceKey(r.Source, id), false)
	return true, nil
}

// deviceGone is the devices' copy's: the watch brought the deletion of
// a device's record, on whichever node deleted it.
func (s *Store) deviceGone(key string) {
	s.bounds.forget(s.subject + strings.TrimPrefix(key, devicePrefix))
}

// purgeAll empties the device's queue.
func (s *Store) purgeAll(ctx context.Context, deviceID string) error {
	err := retry(ctx, func(ctx context.Context) error {
		return s.queue.Purge(ctx, jetstream.WithPurgeSubject(s.subjectOf(deviceID)))
	})
	if err != nil {
		return unavailable("empty queue", err)
	}
	return nil
}
