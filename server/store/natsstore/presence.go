package natsstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldpush/herald/server/store"
)

// Presence: bucket <prefix>_presence maps a device to the node holding its
// session; bucket <prefix>_nodes holds a key per live node, refreshed every
// nodeBeat and gone nodeTTL after its node stops, so a device held by a
// dead node counts as held by none. A takeover is a core NATS message to
// <prefix>.takeover.<node>, carrying the device and the Hold's number.

var _ store.Presence = (*Store)(nil)

const (
	nodeBeat = 2 * time.Second
	nodeTTL  = 6 * time.Second
	// liveCache is how long a node's liveness, once read, is believed.
	liveCache = time.Second
)

type presence struct {
	node  string
	held  jetstream.KeyValue
	nodes jetstream.KeyValue
	// nodesConfig makes the nodes' bucket again if it is lost.
	nodesConfig jetstream.KeyValueConfig
	sub         *nats.Subscription
	takeover    func(string, uint64)
	// copy is the held bucket as this node last heard of it.
	copy *watched[string]
	mu   sync.Mutex
	live map[string]time.Time // node → when it was last seen alive
}

// watchPresence starts the copy of the held bucket.
func (s *Store) watchPresence(ctx context.Context) (err error) {
	s.presence.copy, err = watch(ctx, s, s.presence.held, ">", func(b []byte) (string, error) { return string(b), nil },
		// A device's entry is deleted when it leaves and written again when
		// it comes back: the deletion's revision lets that Hold be one
		// compare-and-set, for a day of absence.
		watchOpts[string]{keepDeleted: 24 * time.Hour})
	return err
}

// announce makes the node live to the others, hears of takeovers and
// keeps the node's key alive.
func (s *Store) announce(ctx context.Context) error {
	p := s.presence
	if _, err := p.nodes.Put(ctx, p.node, nil); err != nil {
		return err
	}
	sub, err := s.nc.Subscribe(s.takeoverSubject(p.node), func(m *nats.Msg) {
		dev, num, ok := strings.Cut(string(m.Data), " ")
		n, err := strconv.ParseUint(num, 10, 64)
		if !ok || err != nil {
			s.log.Warn("natsstore: a malformed takeover", "data", string(m.Data))
			return
		}
		s.pmu.Lock()
		f := p.takeover
		s.pmu.Unlock()
		if f != nil {
			f(dev, n)
		}
	})
	if err != nil {
		return fmt.Errorf("takeover subscription: %w", err)
	}
	p.sub = sub
	s.wg.Add(1)
	go s.beat()
	return nil
}

func (s *Store) takeoverSubject(node string) string {
	return strings.TrimSuffix(s.subject, "q.") + "takeover." + node
}

// beat keeps this node's key alive.
func (s *Store) beat() {
	defer s.wg.Done()
	t := time.NewTicker(nodeBeat)
	defer t.Stop()
	failing := false // logged once an outage, not every beat
	for {
		select {
		case <-s.stop:
			// Briefly: with NATS out of reach the key expires anyway, and
			// a node should not take seconds to stop.
			ctx, cancel := context.WithTimeout(context.Background(), attemptWait)
			s.presence.nodes.Delete(ctx, s.presence.node)
			cancel()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		err := s.announceAgain(ctx)
		cancel()
		switch {
		case err != nil && !failing:
			s.log.Warn("natsstore: announcing the node", "err", err)
			failing = true
		case err == nil && failing:
			s.log.Info("natsstore: announcing the node again")
			failing = false
		}
	}
}

// announceAgain refreshes the node's key. The nodes' bucket is kept in
// memory, so a NATS server that restarted alone has lost it (a cluster
// keeps its definition and empties it): it is created again.
func (s *Store) announceAgain(ctx context.Context) error {
	p := s.presence
	_, err := p.nodes.Put(ctx, p.node, nil)
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		if _, cerr := s.js.CreateOrUpdateKeyValue(ctx, p.nodesConfig); cerr != nil {
			return fmt.Errorf("%w (creating the bucket again: %w)", err, cerr)
		}
		_, err = p.nodes.Put(ctx, p.node, nil)
	}
	return err
}

// Hold records this node as the device's and tells the previous holder.
func (s *Store) Hold(ctx context.Context, deviceID string) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	p := s.presence
	key := deviceKey(deviceID)
	// The copy names the holder to tell, and a compare-and-set against
	// its revision proves it still was: one round trip where a read and
	// a write took two. A copy that lags falls back to both.
	prev, rev, _ := p.copy.entry(key)
	rev, err := p.held.Update(ctx, key, []byte(p.node), rev)
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		prev = ""
		e, gerr := get(ctx, p.held, key)
		if gerr != nil && !errors.Is(gerr, jetstream.ErrKeyNotFound) {
			return 0, unavailable("presence", gerr)
		}
		if e != nil {
			prev = string(e.Value())
		}
		rev, err = p.held.Put(ctx, key, []byte(p.node))
	}
	if err != nil {
		return 0, unavailable("presence", err)
	}
	p.copy.written(key, rev)
	if prev != "" && prev != p.node {
		msg := deviceID + " " + strconv.FormatUint(rev, 10)
		if err := s.nc.Publish(s.takeoverSubject(prev), []byte(msg)); err != nil {
			s.log.Warn("natsstore: telling of a takeover", "device", deviceID, "err", err)
		}
	}
	return rev, nil
}

// Release forgets the device's holder if it is still this node.
func (s *Store) Release(ctx context.Context, deviceID string) error {
	if err := s.check(); err != nil {
		return err
	}
	s.namedSeen.forget(deviceID)
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	p := s.presence
	key := deviceKey(deviceID)
	// A deletion conditional on the copy's revision spares the read when
	// the copy is up to date, as it is unless the device came a moment
	// ago.
	if node, rev, _ := p.copy.entry(key); node == p.node {
		err := p.held.Delete(ctx, key, jetstream.LastRevision(rev))
		if err == nil {
			p.copy.deleted(key, rev)
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return unavailable("presence", err)
		}
	}
	e, err := get(ctx, p.held, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return unavailable("presence", err)
	}
	if string(e.Value()) != p.node {
		return nil
	}
	err = p.held.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return unavailable("presence", err)
	}
	if err == nil {
		p.copy.deleted(key, e.Revision())
	}
	return nil
}

// HeldElsewhere reports whether a live node other than this one holds the
// device. It answers from this node's watched copy of the held bucket
// (reading the bucket for an entry changed a moment ago): a device that
// connected a moment ago may still read as held by none.
func (s *Store) HeldElsewhere(ctx context.Context, deviceID string) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	p := s.presence
	key := deviceKey(deviceID)
	node, known := p.copy.get(key)
	if !known && (p.copy.waiting(key) || p.copy.held(key)) {
		e, err := get(ctx, p.held, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return false, nil
		}
		if err != nil {
			return false, unavailable("presence", err)
		}
		node, known = string(e.Value()), true
	}
	if !known || node == p.node {
		return false, nil
	}
	p.mu.Lock()
	seen, ok := p.live[node]
	p.mu.Unlock()
	if ok && time.Since(seen) < liveCache {
		return true, nil
	}
	_, err := get(ctx, p.nodes, node)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, unavailable("presence", err)
	}
	p.mu.Lock()
	p.live[node] = time.Now()
	if len(p.live) > 1024 {
		clear(p.live) // nodes come and go; the cache only spares reads
	}
	p.mu.Unlock()
	return true, nil
}

// OnTakeover sets the function told of takeovers by other nodes.
func (s *Store) OnTakeover(f func(deviceID string, held uint64)) {
	s.pmu.Lock()
	s.presence.takeover = f
	s.pmu.Unlock()
}
