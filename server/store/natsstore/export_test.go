package natsstore

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Decode is decode, for the fuzz test.
var Decode = decode

// Copies reports whether s's watched copies hold the channel by token,
// the device and where the device is held, however recently learned.
func Copies(s *Store, tok, deviceID string) (channel, device, held bool) {
	_, channel, _ = s.cache.byTok(tok)
	return channel, s.devCache.held(deviceKey(deviceID)), s.presence.copy.held(deviceKey(deviceID))
}

// QuotaWrites is how many writes the shared quota counter has had.
func QuotaWrites(s *Store) (uint64, error) {
	info, err := s.quota.Status(s.life)
	if err != nil {
		return 0, err
	}
	return info.(*jetstream.KeyValueBucketStatus).StreamInfo().State.LastSeq, nil
}

// QueueReads is how many reads of the queue acknowledgements made.
func QueueReads(s *Store) (uint64, error) { return s.ackReads.Load(), nil }

// Noted counts the devices whose named notifications s notes.
func Noted(s *Store) int {
	s.namedSeen.mu.Lock()
	defer s.namedSeen.mu.Unlock()
	return len(s.namedSeen.m)
}

// HeldByOther is heldByOther: whether s's copy of presence has known for
// a while that another node holds the device.
func HeldByOther(s *Store, deviceID string) bool { return s.heldByOther(deviceID) }

// PassWaits counts the enqueues on s that waited for its consumer to
// pass their commit.
func PassWaits(s *Store) int64 { return s.passWaits.Load() }

// Bounds is how many devices' queue bounds s keeps.
func Bounds(s *Store) int {
	s.bounds.mu.Lock()
	defer s.bounds.mu.Unlock()
	return len(s.bounds.m)
}

// DeletedDevices is how many deleted devices' revisions s's copy keeps.
func DeletedDevices(s *Store) int {
	s.devCache.mu.RLock()
	defer s.devCache.mu.RUnlock()
	return len(s.devCache.deletedAt)
}

// ForgetDeleted is the copies' sweep, at the given time.
func ForgetDeleted(s *Store, now time.Time) { s.devCache.sweep(now) }
