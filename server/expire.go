package server

import (
	"context"
	"errors"
	"time"

	"github.com/heraldpush/herald/server/store"
)

// deviceExpirer is what a store offers for deleting devices that never
// came back.
type deviceExpirer interface {
	ExpiredDevices(ctx context.Context, before time.Time, limit int) ([]string, error)
	DeleteDevice(ctx context.Context, id string, seenBefore time.Time) (bool, error)
}

// expirePage is how many devices one look at the store deletes at most.
const expirePage = 256

// expireEvery is how often the service looks for devices to delete: hourly,
// or more often when devices are forgotten sooner than in days.
func expireEvery(after time.Duration) time.Duration {
	return min(time.Hour, max(after/24, time.Second))
}

// expireLoop deletes, now and then every expireEvery, the devices not seen
// for ForgetDevicesAfter, until ctx ends (Run).
func (s *Server) expireLoop(ctx context.Context, st deviceExpirer) {
	clk := s.cfg.Clock
	every := expireEvery(s.cfg.ForgetDevicesAfter)
	timer := clk.NewTimer(every)
	defer timer.Stop()
	for {
		n, err := s.expireDevices(ctx, st)
		s.metrics.forgotten.Add(float64(n))
		if err != nil {
			switch {
			case ctx.Err() != nil:
			case errors.Is(err, store.ErrNotReady):
				// A cluster's node starting before its store: the next
				// sweep will do.
				s.log.Debug("deleting devices that never came back: the store is not ready", "err", err)
			default:
				s.log.Warn("deleting devices that never came back failed", "err", err, "deleted", n)
			}
		} else if n > 0 {
			s.log.Info("deleted devices that never came back", "devices", n, "away_longer_than", s.cfg.ForgetDevicesAfter.String())
		}
		select {
		case <-timer.C():
			timer.Reset(every)
		case <-ctx.Done():
			return
		}
	}
}

// expireDevices deletes every device last seen more than
// ForgetDevicesAfter ago, with its channels and queue, except those with a
// live session (whose last_seen is only written now and then). It returns
// how many it deleted.
func (s *Server) expireDevices(ctx context.Context, st deviceExpirer) (int, error) {
	cutoff := s.cfg.Clock.Now().Add(-s.cfg.ForgetDevicesAfter)
	deleted := 0
	for {
		ids, err := st.ExpiredDevices(ctx, cutoff, expirePage)
		if err != nil {
			return deleted, err
		}
		progress := false
		for _, id := range ids {
			if s.session(id) != nil {
				continue
			}
			ok, err := st.DeleteDevice(ctx, id, cutoff)
			if err != nil {
				return deleted, err
			}
			if ok {
				deleted++
				progress = true
			}
		}
		// A short page is the last; a page of connected devices only
		// would come back the same, so it ends the round too.
		if len(ids) < expirePage || !progress {
			return deleted, nil
		}
	}
}
