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

// Devices: d.<device> in the devices bucket, s.<hash of address>.<device>
// indexing them by the address they enrolled from.

type deviceRec struct {
	ID         string `json:"id,omitempty"`
	SecretHash []byte `json:"h"`
	Source     string `json:"s"`
	Created    int64  `json:"c"`
	Seen       int64  `json:"l"`
	Power      string `json:"p"`
	Acked      uint64 `json:"a,omitempty"`
	Retired    int64  `json:"r,omitempty"`
}

func decodeDevice(b []byte) (deviceRec, error) {
	var r deviceRec
	err := json.Unmarshal(b, &r)
	return r, err
}

func (r deviceRec) device(id string) store.Device {
	d := store.Device{ID: id, SecretHash: r.SecretHash, Source: r.Source, CreatedAt: time.UnixMilli(r.Created),
		LastSeen: time.UnixMilli(r.Seen), Power: r.Power, AckedSeq: r.Acked}
	if r.Retired != 0 {
		d.RetiredAt = time.UnixMilli(r.Retired)
	}
	return d
}

// devicePrefix begins a device's key; the rest is its token, as in its
// queue's subject.
const devicePrefix = "d."

func deviceKey(id string) string         { return devicePrefix + token(id) }
func sourceKey(source, id string) string { return "s." + hash(source) + "." + token(id) }
func sourceFilter(source string) string  { return "s." + hash(source) + ".*" }

// CreateDevice enrols a device.
func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	power := d.Power
	if power == "" {
		power = "normal"
	}
	b, _ := json.Marshal(deviceRec{ID: d.ID, SecretHash: d.SecretHash, Source: d.Source, Created: d.CreatedAt.UnixMilli(), Seen: d.LastSeen.UnixMilli(), Power: power})
	rev, err := s.devices.Create(ctx, deviceKey(d.ID), b)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("natsstore: device %s: %w", d.ID, store.ErrExists)
		}
		return unavailable("create device", err)
	}
	s.devCache.written(deviceKey(d.ID), rev)
	if _, err := s.devices.Put(ctx, sourceKey(d.Source, d.ID), nil); err != nil {
		return unavailable("index device", err)
	}
	s.own.wrote(sourceFilter(d.Source), sourceKey(d.Source, d.ID), true)
	return nil
}

func (s *Store) getDevice(ctx context.Context, id string) (deviceRec, uint64, error) {
	e, err := get(ctx, s.devices, deviceKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return deviceRec{}, 0, fmt.Errorf("natsstore: device %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return deviceRec{}, 0, unavailable("device", err)
	}
	var r deviceRec
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return deviceRec{}, 0, fmt.Errorf("natsstore: device %s: %w", id, err)
	}
	return r, e.Revision(), nil
}

// Device looks a device up by id.
func (s *Store) Device(ctx context.Context, id string) (store.Device, error) {
	if err := s.check(); err != nil {
		return store.Device{}, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	// The watched copy answers as the bucket would (a hello's device is
	// rarely one changed in the last moments, and one changed then is
	// read); what it cannot say is NextSeq, below.
	r, ok := s.devCache.get(deviceKey(id))
	if !ok {
		var err error
		if r, _, err = s.getDevice(ctx, id); err != nil {
			return store.Device{}, err
		}
	}
	d := r.device(id)
	highest, err := s.highestGiven(ctx, r.Acked)
	if err != nil {
		return store.Device{}, err
	}
	d.NextSeq = highest + 1
	return d, nil
}

// DeviceStatus answers from this node's watched copy of the devices
// bucket, which a write by another node reaches within moments; a device
// the copy does not know (or that this node has just written) is read
// from the bucket.
func (s *Store) DeviceStatus(ctx context.Context, id string) (store.Device, error) {
	if err := s.check(); err != nil {
		return store.Device{}, err
	}
	if r, ok := s.devCache.get(deviceKey(id)); ok {
		return r.device(id), nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	r, _, err := s.getDevice(ctx, id)
	if err != nil {
		return store.Device{}, err
	}
	return r.device(id), nil
}

// updateDevice changes a device with compare-and-set, retrying when
// another node changed it meanwhile. change returns false for no change.
func (s *Store) updateDevice(ctx context.Context, id string, change func(*deviceRec) bool) error {
	if err := s.check(); err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	return s.changeDevice(ctx, id, change)
}

// changeDevice is updateDevice for the flusher, which also runs while
// the store closes.
func (s *Store) changeDevice(ctx context.Context, id string, change func(*deviceRec) bool) error {
	for {
		r, rev, err := s.getDevice(ctx, id)
		if err != nil {
			return err
		}
		if !change(&r) {
			return nil
		}
		b, _ := json.Marshal(r)
		rev, err = s.devices.Update(ctx, deviceKey(id), b, rev)
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return unavailable("update device", err)
		}
		s.devCache.written(deviceKey(id), rev)
		return nil
	}
}

// CountDevicesFromSource counts devices enrolled from one address.
func (s *Store) CountDevicesFromSource(ctx context.Context, source string) (int, error) {
	if err := s.check(); err != nil {
		return 0, err // before s.devices is set, if not ready
	}
	return s.countKeys(ctx, s.devices, sourceFilter(source))
}

// countKeys counts the keys filter lists, this node's own creations and
// deletions of them included however recent (listed.go).
func (s *Store) countKeys(ctx context.Context, kv jetstream.KeyValue, filter string) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := count(ctx, kv, filter, &s.own)
	if err != nil {
		return 0, unavailable("count", err)
	}
	return n, nil
}

// TouchDevice records when the device was last connected.
func (s *Store) TouchDevice(ctx context.Context, id string, seen time.Time) error {
	return s.updateDevice(ctx, id, func(r *deviceRec) bool {
		r.Seen = seen.UnixMilli()
		return true
	})
}

// SetPower records the device's power level.
func (s *Store) SetPower(ctx context.Context, id, power string) error {
	return s.updateDevice(ctx, id, func(r *deviceRec) bool {
		r.Power = power
		return true
	})
}
