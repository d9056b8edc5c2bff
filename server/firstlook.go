package server

import (
	"hash/maphash"
	"sync/atomic"
)

// A session's writer starts by reading the device's queue from the store
// (its first look), and from then on keeps a copy fed by the store's
// commit hook (Server.committed). In a reconnect storm nearly every
// device comes back having applied everything it was given, and that read
// was a second query per hello (a sixth of the service's CPU per hello in
// a profile of heraldbench --reconnect) to learn that nothing is queued.
//
// The device's read at hello already says so when the store keeps its
// promise of store.CurrentDevices: NextSeq one above the hello's last_seq
// means no number above it was ever given. What the read cannot say is
// what was committed after it and before the session became the device's
// live one, which the hook then told to nobody. commitsTold closes that
// gap: the hook counts each commit it is told of, per shard of device
// ids, before it looks for the device's session; the hello notes the
// device's count before its read, and the session, once live, compares.
// An unchanged count means every commit since the read reaches the
// session through the hook, and the copy may start empty. A changed one
// (a commit for this device, or another in its shard, or a resync) falls
// back to reading the store, as before.

// toldShards is how many counts commitsTold keeps: enough that a commit
// for another device seldom shares a device's, at 8 bytes each.
const toldShards = 1024

// commitsTold counts the commits the store has told of, by shard of
// device id. Resyncs count in every shard.
type commitsTold struct {
	seed   maphash.Seed
	shards [toldShards]atomic.Uint64
}

func newCommitsTold() *commitsTold { return &commitsTold{seed: maphash.MakeSeed()} }

func (c *commitsTold) shard(deviceID string) *atomic.Uint64 {
	return &c.shards[maphash.String(c.seed, deviceID)%toldShards]
}

// count is the device's count now.
func (c *commitsTold) count(deviceID string) uint64 { return c.shard(deviceID).Load() }

// told counts a commit for the device. The hook calls it before it looks
// for the device's session.
func (c *commitsTold) told(deviceID string) { c.shard(deviceID).Add(1) }

// resync counts a resync, which concerns every device.
func (c *commitsTold) resync() {
	for i := range c.shards {
		c.shards[i].Add(1)
	}
}

// queueKnownEmpty says whether a session that has just become the
// device's live one may start with an empty copy of its queue instead of
// reading the store: the store's device read is current
// (store.CurrentDevices), it showed nothing numbered above what the
// device has applied (started.nothingAbove), and no commit was told for
// the device since before that read (toldBefore, commitsTold.count).
func (s *Server) queueKnownEmpty(deviceID string, do started, toldBefore uint64) bool {
	return s.devicesCurrent && do.nothingAbove && s.told.count(deviceID) == toldBefore
}
