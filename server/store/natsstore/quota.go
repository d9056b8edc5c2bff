package natsstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/server/store"
)

var _ store.Quota = (*Store)(nil)

// quotaKeep is how long a day's counts are kept: the bucket forgets an
// entry this long after its last count, and a day's key is never used
// again once the day is over.
const quotaKeep = 48 * time.Hour

// Daily quotas are counted in the shared bucket in leases: a node that
// needs a count takes several ahead with one compare-and-set and hands
// them out from memory, so a busy channel costs the cluster a round trip
// every few notifications instead of two replicated operations each. The
// first lease of a channel's day is one count, and each next one twice
// the last, up to leaseMax, so a channel posted to now and then costs
// what it did and strands nothing; a lease is never more than a quarter
// of what is left of the day's quota, so that near the limit the nodes
// share what remains. The price: counts a node took and did not hand out
// (it stopped, or the sender went to other nodes) are lost to the sender
// for the day, at most leaseMax per node and channel.
const leaseMax = 16

// leases holds the counts taken ahead, per day and channel.
type leases struct {
	mu  sync.Mutex
	day int64
	m   map[string]*lease
}

// lease is one channel's counts on one day. Its mutex is held while its
// next lease is taken, so the node's takers of one channel wait for that
// round trip instead of each making their own.
type lease struct {
	mu   sync.Mutex
	left int // counts taken ahead and not handed out
	next int // size of the next lease
}

func (l *leases) get(day int64, key string) *lease {
	l.mu.Lock()
	defer l.mu.Unlock()
	if day != l.day || l.m == nil {
		// Another day: yesterday's leases are of no use, and dropping
		// them keeps the map to the channels used today. A take for the
		// day before, racing with the change, starts that day's map
		// again, which costs it a fresh lease and nothing else.
		l.day, l.m = day, map[string]*lease{}
	}
	e := l.m[key]
	if e == nil {
		e = &lease{next: 1}
		l.m[key] = e
	}
	return e
}

// Take hands out a count from this node's lease of the channel's day,
// taking the next lease from the shared counter with compare-and-set when
// it is used up, so two nodes counting at once never take more than the
// limit between them.
func (s *Store) Take(ctx context.Context, channelID string, day int64, limit int) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	if limit <= 0 {
		return false, nil
	}
	key := strconv.FormatInt(day, 10) + "." + token(channelID)
	e := s.leases.get(day, key)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.left > 0 {
		e.left--
		return true, nil
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	n, err := s.takeLease(ctx, key, limit, e.next)
	if err != nil || n == 0 {
		return false, err
	}
	e.left = n - 1
	e.next = min(e.next*2, leaseMax)
	return true, nil
}

// takeLease adds up to want counts to the shared counter, never past
// limit nor more than a quarter of what is left (at least one), and
// returns how many it added: 0 once the limit is reached.
func (s *Store) takeLease(ctx context.Context, key string, limit, want int) (int, error) {
	size := func(used int) int { return max(1, min(want, (limit-used)/4)) }
	for {
		e, err := get(ctx, s.quota, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			n := min(size(0), limit)
			_, err = s.quota.Create(ctx, key, []byte(strconv.Itoa(n)))
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			if err != nil {
				return 0, unavailable("quota", err)
			}
			return n, nil
		}
		if err != nil {
			return 0, unavailable("quota", err)
		}
		used, err := strconv.Atoi(string(e.Value()))
		if err != nil {
			return 0, fmt.Errorf("natsstore: quota %s: %w", key, err)
		}
		if used >= limit {
			return 0, nil
		}
		n := min(size(used), limit-used)
		_, err = s.quota.Update(ctx, key, []byte(strconv.Itoa(used+n)), e.Revision())
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		if err != nil {
			return 0, unavailable("quota", err)
		}
		return n, nil
	}
}
