package server

import (
	"context"
	"time"
)

// expireMessagesEvery is how often the service deletes Web Push messages
// whose TTL has ended. Until then they are only hidden (Pending and the
// sessions leave them out), but they still count toward the queue depth,
// so the sweep is frequent.
const expireMessagesEvery = time.Minute

// expireMessagesPage bounds one delete, so that the committer's other
// work is not held up by a long one.
const expireMessagesPage = 1024

// startExpiringMessages starts expireMessagesLoop's timer when the first
// message with an expiry is queued: a service that only ever takes MPNS
// has nothing to sweep and runs no timer for it.
func (s *Server) startExpiringMessages() {
	s.expiringOnce.Do(func() { close(s.expiring) })
}

// expireMessagesLoop deletes expired messages every expireMessagesEvery,
// from the first message with an expiry until ctx ends (Run).
func (s *Server) expireMessagesLoop(ctx context.Context) {
	select {
	case <-s.expiring:
	case <-ctx.Done():
		return
	}
	timer := s.cfg.Clock.NewTimer(expireMessagesEvery)
	defer timer.Stop()
	for {
		select {
		case <-timer.C():
			timer.Reset(expireMessagesEvery)
		case <-ctx.Done():
			return
		}
		total := 0
		for {
			n, err := s.cfg.Store.DeleteExpired(ctx, expireMessagesPage)
			total += n
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("deleting expired messages failed", "err", err, "deleted", total)
				}
				break
			}
			if n < expireMessagesPage {
				break
			}
		}
		if total > 0 {
			s.log.Debug("deleted expired messages", "messages", total)
		}
	}
}
