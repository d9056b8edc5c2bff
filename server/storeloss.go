package server

import (
	"context"
	"strconv"
	"time"

	"github.com/heraldpush/herald/wire"
)

// storeLossLoop watches a store that can say it is not ready. Senders are
// refused with 503 from the first moment it is not (every notification
// checks), but a device connected to this node would stay connected and
// receive nothing until the store came back: a node cut off from NATS
// must hand its devices to the nodes that are not. So once the store has
// been not ready for StoreLostAfter, every session is closed with 4001
// and its own delay within RetrySpread, and devices connecting meanwhile
// are refused with 503 (shed). It ends with ctx.
func (s *Server) storeLossLoop(ctx context.Context) {
	every := max(s.cfg.StoreLostAfter/3, 1)
	timer := s.cfg.Clock.NewTimer(every)
	defer timer.Stop()
	var lostSince time.Time // zero while the store is usable
	for {
		select {
		case <-timer.C():
		case <-ctx.Done():
			return
		}
		lostSince = s.checkStore(lostSince)
		// Armed again only once looked, so that a test moving the clock
		// knows the last look is done.
		timer.Reset(every)
	}
}

// checkStore looks at the store once; lostSince is when it was first seen
// unusable (zero: it was usable), and the result the same after this look.
func (s *Server) checkStore(lostSince time.Time) time.Time {
	now := s.cfg.Clock.Now()
	err := s.readiness.Ready()
	if err == nil {
		if !lostSince.IsZero() {
			s.log.Info("store usable again", "after", now.Sub(lostSince))
		}
		return time.Time{}
	}
	if lostSince.IsZero() {
		return now
	}
	if now.Sub(lostSince) < s.cfg.StoreLostAfter {
		return lostSince
	}
	s.mu.Lock()
	n := 0
	for _, sess := range s.sessions {
		if !sess.ended() {
			sess.close(wire.CloseRetryLater, strconv.Itoa(s.retryDelayLocked()))
			n++
		}
	}
	s.mu.Unlock()
	if n > 0 {
		s.log.Warn("store unusable; asked devices to retry later elsewhere", "err", err, "devices", n, "for", now.Sub(lostSince))
	}
	return lostSince
}
