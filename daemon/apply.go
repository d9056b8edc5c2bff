package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/storage"
	"github.com/heraldpush/herald/wire"
)

// Counter names kept in the device database.
const (
	CountRawDelivered   = "raw_delivered"
	CountRawDropped     = "raw_dropped"
	CountToastsShell    = "toasts_shell"
	CountToastsApp      = "toasts_app"
	CountTilesUpdated   = "tiles_updated"
	CountUnknownChannel = "dropped_unknown_channel"
	CountPayloadErrors  = "payload_errors"
	CountBadContent     = "bad_content"
	// UnifiedPush messages: queued for an app's connector, taken by it
	// (acked), and dropped from a full backlog.
	CountUnifiedPushQueued    = "unifiedpush_queued"
	CountUnifiedPushDelivered = "unifiedpush_delivered"
	CountUnifiedPushDropped   = "unifiedpush_dropped"
	// CountUnifiedPushWrongUser counts calls to an app's connector the
	// distributor withheld, and Unregister requests it refused, because
	// the process holding the app's bus name runs as another Unix user
	// than the registration's.
	CountUnifiedPushWrongUser = "unifiedpush_wrong_user"
)

// linkHandler is the daemon as the link sees it.
type linkHandler Daemon

func (h *linkHandler) d() *Daemon { return (*Daemon)(h) }

func (h *linkHandler) Session(ctx context.Context) (channel.Identity, uint64, string, error) {
	d := h.d()
	id, err := d.store.Identity(ctx, d.cfg.Service)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return channel.Identity{}, 0, "", err
	}
	power, err := d.power(ctx)
	if err != nil {
		return channel.Identity{}, 0, "", err
	}
	return channel.Identity{ID: id.DeviceID, Secret: id.Secret}, id.AppliedSeq, power, nil
}

func (h *linkHandler) Enrolled(ctx context.Context, id channel.Identity) error {
	d := h.d()
	return d.store.SaveIdentity(ctx, storage.Identity{Service: d.cfg.Service, DeviceID: id.ID, Secret: id.Secret, EnrolledAt: d.cfg.Clock.Now()})
}

func (h *linkHandler) Rejected(ctx context.Context) error {
	d := h.d()
	d.log.Warn("the notification service does not know this device; enrolling again")
	return d.store.SaveIdentity(ctx, storage.Identity{Service: d.cfg.Service, EnrolledAt: d.cfg.Clock.Now()})
}

func (h *linkHandler) Network(ctx context.Context) (string, error) {
	return h.d().cfg.Network(ctx)
}

func (h *linkHandler) HeartbeatCeiling(ctx context.Context, _ string) time.Duration {
	if f := h.d().cfg.HeartbeatCeiling; f != nil {
		return f(ctx)
	}
	return 0
}

func (h *linkHandler) LoadLearned(ctx context.Context, network string) (channel.Learned, bool, error) {
	hb, err := h.d().store.Heartbeat(ctx, network)
	if errors.Is(err, storage.ErrNotFound) {
		return channel.Learned{}, false, nil
	}
	if err != nil {
		return channel.Learned{}, false, err
	}
	return channel.Learned{Interval: hb.Interval, Good: hb.Good, Bad: hb.Bad, Settled: hb.Settled,
		NextProbe: hb.NextProbe, Hold: hb.Hold, Rung: hb.Rung, Failed: hb.Failed}, true, nil
}

func (h *linkHandler) SaveLearned(ctx context.Context, network string, l channel.Learned) error {
	d := h.d()
	return d.store.SaveHeartbeat(ctx, storage.Heartbeat{Network: network, Interval: l.Interval, Good: l.Good, Bad: l.Bad,
		Settled: l.Settled, NextProbe: l.NextProbe, Hold: l.Hold, Rung: l.Rung, Failed: l.Failed, UpdatedAt: d.cfg.Clock.Now()})
}

func (h *linkHandler) URIChanged(channelID, uri string) {
	h.d().uriChanged(context.Background(), channelID, uri)
}

func (h *linkHandler) Expired(channelID string) {
	d := h.d()
	ch, err := d.store.ChannelByID(d.ctx, channelID)
	if err != nil {
		return
	}
	d.log.Warn("channel expired on the service", "app", ch.App)
}

func (h *linkHandler) StatusChanged(connected bool) {
	d := h.d()
	d.linkChanged(connected)
	d.broadcastStatus(connected)
	if connected {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.resync(d.ctx)
		}()
	}
}

// Apply is where every notification takes effect: in one transaction with
// the new applied sequence number, so each happens exactly once however the
// daemon or the service crash. Each notification's applier (appliers.go)
// works out its effects inside the transaction, where they are recorded;
// what lies outside the database (the desktop's toast display, waking event
// streams, the observer) follows the commit, and only for the
// notifications this call applied: a resent batch must not show a toast or
// tell the UI twice.
func (h *linkHandler) Apply(ctx context.Context, ns []wire.Notification) error {
	d := h.d()
	var done []effects
	err := d.store.Apply(ctx, d.cfg.Service, ns[len(ns)-1].Seq, d.cfg.Clock.Now(), func(tx *storage.ApplyTx, applied uint64) error {
		done = done[:0] // a retried transaction starts again
		for i := range ns {
			n := &ns[i]
			if n.Seq <= applied {
				continue // applied before a crash; the ack was lost
			}
			ch, err := tx.ChannelByID(n.ChannelID)
			if errors.Is(err, storage.ErrNotFound) {
				if err := tx.Count(CountUnknownChannel, 1); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			eff, err := d.applyOne(tx, ch, *n)
			if err != nil {
				return err
			}
			done = append(done, eff)
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.afterCommit(ctx, done)
	return nil
}

// afterCommit carries out the effects that lie outside the database.
func (d *Daemon) afterCommit(ctx context.Context, done []effects) {
	if d.cfg.OnChange != nil {
		changes := make([]Change, 0, len(done))
		for _, e := range done {
			changes = append(changes, e.change)
		}
		d.notifyApplied(ctx, changes)
	}
	for _, e := range done {
		if e.push && d.up != nil {
			d.up.wake()
			break
		}
	}
	woken := map[string]bool{}
	for _, e := range done {
		if e.wake != "" && !woken[e.wake] {
			woken[e.wake] = true
			d.hub.wake(e.wake)
		}
	}
	for _, e := range done {
		if e.show == nil {
			continue
		}
		if err := d.cfg.Display.Show(ctx, *e.show); err != nil {
			d.log.Warn("toast display failed", "app", e.show.App, "err", err)
		}
	}
}

// acceptedAt is when the service accepted n's POST, zero when it did not
// say.
func acceptedAt(n wire.Notification) time.Time {
	if n.AcceptedAt <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n.AcceptedAt)
}
