package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/platform"
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

func (h *linkHandler) LoadLearned(ctx context.Context, network string) (channel.Learned, bool, error) {
	hb, err := h.d().store.Heartbeat(ctx, network)
	if errors.Is(err, storage.ErrNotFound) {
		return channel.Learned{}, false, nil
	}
	if err != nil {
		return channel.Learned{}, false, err
	}
	return channel.Learned{Interval: hb.Interval, Good: hb.Good, Bad: hb.Bad, Settled: hb.Settled}, true, nil
}

func (h *linkHandler) SaveLearned(ctx context.Context, network string, l channel.Learned) error {
	d := h.d()
	return d.store.SaveHeartbeat(ctx, storage.Heartbeat{Network: network, Interval: l.Interval, Good: l.Good, Bad: l.Bad,
		Settled: l.Settled, UpdatedAt: d.cfg.Clock.Now()})
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
// daemon or the service crash. Side effects outside the database (the
// desktop's toast display, waking event streams, the observer) run after
// the commit, and only for the notifications this call applied: a resent
// batch must not show a toast or tell the UI twice.
func (h *linkHandler) Apply(ctx context.Context, ns []wire.Notification) error {
	d := h.d()
	var show []platform.Toast
	var changes []Change
	woken := map[string]bool{}
	err := d.store.Apply(ctx, d.cfg.Service, ns[len(ns)-1].Seq, d.cfg.Clock.Now(), func(tx *storage.ApplyTx, applied uint64) error {
		show, changes = show[:0], changes[:0]
		clear(woken)
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
			t, wake, running, err := d.applyOne(tx, ch, *n)
			if err != nil {
				return err
			}
			if t != nil {
				show = append(show, *t)
			}
			if wake {
				woken[ch.App] = true
			}
			if d.cfg.OnChange != nil {
				c := Change{Kind: n.Kind, App: ch.App, MessageID: n.MessageID}
				if n.Kind == ChangeRaw {
					c.Body, c.Running = n.Body, running
				}
				changes = append(changes, c)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	d.notifyApplied(ctx, changes)
	for a := range woken {
		d.hub.wake(a)
	}
	for _, t := range show {
		if err := d.cfg.Display.Show(ctx, t); err != nil {
			d.log.Warn("toast display failed", "app", t.App, "err", err)
		}
	}
	return nil
}

// applyOne applies one notification. It returns a toast for the shell to
// show, whether the app has a new event, and whether the app was running.
func (d *Daemon) applyOne(tx *storage.ApplyTx, ch storage.LocalChannel, n wire.Notification) (*platform.Toast, bool, bool, error) {
	running, foreground, err := tx.Running(ch.App)
	if err != nil {
		return nil, false, false, err
	}
	t, wake, err := d.dispatch(tx, ch, n, running, foreground)
	return t, wake, running, err
}

// dispatch applies n by its kind for an app in the given state.
func (d *Daemon) dispatch(tx *storage.ApplyTx, ch storage.LocalChannel, n wire.Notification, running, foreground bool) (*platform.Toast, bool, error) {
	event := func(e app.Event) (bool, error) {
		if !running {
			return false, nil
		}
		e.App = ch.App
		b, err := json.Marshal(e)
		if err != nil {
			return false, err
		}
		_, err = tx.AddEvent(ch.App, e.Type, b)
		return err == nil, err
	}
	// A payload the app's shell cannot read is reported to the app, as
	// PayloadFormatError was, and otherwise dropped.
	badPayload := func(kind, counter string, perr error) (*platform.Toast, bool, error) {
		d.log.Warn("notification rejected", "app", ch.App, "seq", n.Seq, "err", perr)
		if err := tx.Count(counter, 1); err != nil {
			return nil, false, err
		}
		woke, err := event(app.Event{Type: app.EventError, ErrorKind: kind, MessageID: n.MessageID, Message: perr.Error()})
		return nil, woke, err
	}

	switch mpns.Kind(n.Kind) {
	case mpns.KindRaw:
		// The raw log keeps what arrived and where it went, for the
		// start screen and test tools.
		logRaw := func(outcome string) error {
			return tx.AddRaw(storage.RawRecord{App: ch.App, MessageID: n.MessageID, Body: n.Body, Outcome: outcome, Seq: n.Seq,
				SentAt: acceptedAt(n)})
		}
		if !running {
			queued, err := d.rawNotRunning(tx, ch.App, n)
			if err != nil {
				return nil, false, err
			}
			outcome := storage.RawDropped
			if queued {
				outcome = storage.RawToHandler
			}
			return nil, false, logRaw(outcome)
		}
		if err := logRaw(storage.RawToApp); err != nil {
			return nil, false, err
		}
		if err := tx.Count(CountRawDelivered, 1); err != nil {
			return nil, false, err
		}
		woke, err := event(app.Event{Type: app.EventRaw, MessageID: n.MessageID, Body: n.Body})
		return nil, woke, err

	case mpns.KindToast:
		t, err := mpns.ParseToast(n.Body)
		if err != nil {
			return badPayload(app.ErrorPayloadFormat, CountPayloadErrors, err)
		}
		rec := storage.ToastRecord{App: ch.App, Text1: t.Text1, Text2: t.Text2, Param: t.Param, Sound: t.Sound, Silent: t.Silent,
			MessageID: n.MessageID, Seq: n.Seq, ShownBy: "shell", SentAt: acceptedAt(n)}
		if foreground {
			rec.ShownBy = "app"
		}
		if _, err := tx.AddToast(rec); err != nil {
			return nil, false, err
		}
		if foreground {
			if err := tx.Count(CountToastsApp, 1); err != nil {
				return nil, false, err
			}
			woke, err := event(app.Event{Type: app.EventToast, MessageID: n.MessageID, Text1: t.Text1, Text2: t.Text2, Param: t.Param})
			return nil, woke, err
		}
		if err := tx.Count(CountToastsShell, 1); err != nil {
			return nil, false, err
		}
		return &platform.Toast{App: ch.App, Text1: t.Text1, Text2: t.Text2, Param: t.Param, Sound: t.Sound, Silent: t.Silent}, false, nil

	case mpns.KindTile:
		t, err := mpns.ParseTile(n.Body)
		if err != nil {
			return badPayload(app.ErrorPayloadFormat, CountPayloadErrors, err)
		}
		for _, img := range t.RemoteImages() {
			if !mpns.ImageAllowed(img, ch.Domains) {
				return badPayload(app.ErrorMessageBadContent, CountBadContent,
					fmt.Errorf("image %s is not from a domain the tile is bound to (%s)", img, strings.Join(ch.Domains, ", ")))
			}
		}
		rec, err := tx.Tile(ch.App, t.ID)
		if err != nil {
			return nil, false, err
		}
		state := mpns.TileState{Template: rec.Template, Fields: rec.Fields}
		if err := state.Apply(t); err != nil {
			return badPayload(app.ErrorMessageBadContent, CountBadContent, err)
		}
		rec.Template, rec.Fields = state.Template, state.Fields
		if err := tx.PutTile(rec); err != nil {
			return nil, false, err
		}
		return nil, false, tx.Count(CountTilesUpdated, 1)
	}
	return badPayload(app.ErrorPayloadFormat, CountPayloadErrors, fmt.Errorf("unknown notification kind %q", n.Kind))
}

// acceptedAt is when the service accepted n's POST, zero when it did not
// say.
func acceptedAt(n wire.Notification) time.Time {
	if n.AcceptedAt <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n.AcceptedAt)
}
