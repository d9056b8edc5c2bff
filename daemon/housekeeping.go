package daemon

import (
	"context"
	"time"

	"github.com/heraldpush/herald/platform"
)

// History bounds what the device database keeps of the past: the toast
// history and the events waiting for an app that stopped taking them.
// Zero fields take the defaults in package platform, whose comments give
// their reasons.
type History struct {
	ToastsKept   int           // toasts kept per phone
	ToastsMaxAge time.Duration // older toasts are deleted
	EventsKept   int           // events kept per app
	EventsMaxAge time.Duration // older events are deleted
	// Every is how often the daemon prunes (0: DefaultPruneEvery); it
	// also prunes when it starts. Negative prunes only at start, for tests
	// that count the fake clock's timers.
	Every time.Duration
}

// DefaultPruneEvery: the bounds are loose (a month, three days), so an
// hour late costs nothing, and an idle phone wakes for it only once an
// hour.
const DefaultPruneEvery = time.Hour

func (h History) withDefaults() History {
	if h.ToastsKept <= 0 {
		h.ToastsKept = platform.DefaultToastsKept
	}
	if h.ToastsMaxAge <= 0 {
		h.ToastsMaxAge = platform.DefaultToastsMaxAge
	}
	if h.EventsKept <= 0 {
		h.EventsKept = platform.DefaultEventsKept
	}
	if h.EventsMaxAge <= 0 {
		h.EventsMaxAge = platform.DefaultEventsMaxAge
	}
	if h.Every == 0 {
		h.Every = DefaultPruneEvery
	}
	return h
}

// housekeep prunes the history now and then every History.Every, on the
// daemon's clock, until ctx ends.
func (d *Daemon) housekeep(ctx context.Context) {
	h := d.cfg.History
	for {
		now := d.cfg.Clock.Now()
		p, err := d.store.Prune(ctx, h.ToastsKept, now.Add(-h.ToastsMaxAge), h.EventsKept, now.Add(-h.EventsMaxAge))
		switch {
		case err != nil && ctx.Err() == nil:
			d.log.Warn("pruning the history failed", "err", err)
		case p.Toasts > 0 || p.Events > 0:
			d.log.Info("history pruned", "toasts", p.Toasts, "events", p.Events)
		}
		if h.Every < 0 {
			return
		}
		t := d.cfg.Clock.NewTimer(h.Every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}
