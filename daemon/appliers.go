package daemon

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/storage"
	"github.com/heraldpush/herald/wire"
)

// effects is what one notification does. Its applier works it out inside
// the apply transaction and record stores it there; after the commit the
// display shows show, the app named by wake hears of its new event and the
// observer gets change.
type effects struct {
	count string               // the counter to add one to
	toast *storage.ToastRecord // for the toast history
	tile  *storage.TileRecord  // the tile's new state
	raw   *storage.RawRecord   // for the raw log
	event *app.Event           // for the app's event stream, when it is running
	show  *platform.Toast      // for the shell's display
	push  bool                 // a message joined the UnifiedPush outbox

	wake   string // set by record: the app with a new event
	change Change // Kind, App and MessageID set by applyOne
}

// notice is one notification for an app, with the app's state when it
// arrived.
type notice struct {
	tx                  *storage.ApplyTx
	ch                  storage.LocalChannel
	n                   wire.Notification
	running, foreground bool
	// up is the UnifiedPush registration the channel belongs to, if any.
	up *storage.UnifiedPushRegistration
}

// applier works out the effects of one notification of its kind. It may
// read the transaction, and write what only its kind keeps.
type applier func(d *Daemon, a notice) (effects, error)

// appliers holds one applier for each kind mpns defines; a test checks
// that none is missing.
var appliers = map[mpns.Kind]applier{
	mpns.KindRaw:     applyRaw,
	mpns.KindToast:   applyToast,
	mpns.KindTile:    applyTile,
	mpns.KindWebPush: applyWebPush,
}

// applyOne applies one notification and records its effects.
func (d *Daemon) applyOne(tx *storage.ApplyTx, ch storage.LocalChannel, n wire.Notification) (effects, error) {
	running, foreground, err := tx.Running(ch.App)
	if err != nil {
		return effects{}, err
	}
	a := notice{tx: tx, ch: ch, n: n, running: running, foreground: foreground}
	apply, ok := appliers[mpns.Kind(n.Kind)]
	reg, isUP, err := tx.UnifiedPushByApp(ch.App)
	if err != nil {
		return effects{}, err
	}
	if isUP {
		// A UnifiedPush app's channel has one delivery path, whatever
		// the kind: its connector on D-Bus.
		a.up, apply, ok = &reg, applyUnifiedPush, true
	}
	var eff effects
	if ok {
		eff, err = apply(d, a)
	} else {
		eff = d.rejected(a, app.ErrorPayloadFormat, CountPayloadErrors, fmt.Errorf("unknown notification kind %q", n.Kind))
	}
	if err != nil {
		return effects{}, err
	}
	eff.change.Kind, eff.change.App, eff.change.MessageID = n.Kind, ch.App, n.MessageID
	return eff, record(a, &eff)
}

// record stores eff in the apply transaction. An event is only for an app
// that is running: one that is not learns nothing, as on the phone.
func record(a notice, eff *effects) error {
	tx := a.tx
	if eff.count != "" {
		if err := tx.Count(eff.count, 1); err != nil {
			return err
		}
	}
	if eff.toast != nil {
		if _, err := tx.AddToast(*eff.toast); err != nil {
			return err
		}
	}
	if eff.tile != nil {
		if err := tx.PutTile(*eff.tile); err != nil {
			return err
		}
	}
	if eff.raw != nil {
		if err := tx.AddRaw(*eff.raw); err != nil {
			return err
		}
	}
	if eff.event != nil && a.running {
		e := *eff.event
		e.App = a.ch.App
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if _, err := tx.AddEvent(a.ch.App, e.Type, b); err != nil {
			return err
		}
		eff.wake = a.ch.App
	}
	return nil
}

// rejected is the effect of a payload the app's shell cannot take: it is
// reported to the app, as PayloadFormatError and MessageBadContent were,
// and otherwise dropped.
func (d *Daemon) rejected(a notice, kind, counter string, perr error) effects {
	d.log.Warn("notification rejected", "app", a.ch.App, "seq", a.n.Seq, "err", perr)
	return effects{count: counter,
		event: &app.Event{Type: app.EventError, ErrorKind: kind, MessageID: a.n.MessageID, Message: perr.Error()}}
}

// applyRaw passes the body to the running app; for an app that is not
// running it is dropped, as MPNS did, or queued for the app's background
// handler.
//
// The raw log keeps what arrived and where it went, for the start screen
// and test tools.
func applyRaw(d *Daemon, a notice) (effects, error) {
	eff := effects{change: Change{Body: a.n.Body, Running: a.running},
		raw: &storage.RawRecord{App: a.ch.App, MessageID: a.n.MessageID, Body: a.n.Body, Outcome: storage.RawToApp,
			Seq: a.n.Seq, SentAt: acceptedAt(a.n)}}
	if !a.running {
		queued, err := d.rawNotRunning(a.tx, a.ch.App, a.n)
		eff.raw.Outcome = storage.RawDropped
		if queued {
			eff.raw.Outcome = storage.RawToHandler
		}
		return eff, err
	}
	eff.count = CountRawDelivered
	eff.event = &app.Event{Type: app.EventRaw, MessageID: a.n.MessageID, Body: a.n.Body}
	return eff, nil
}

// applyWebPush passes a Web Push message to the running app as it passes a
// raw notification: opaque bytes, byte for byte, dropped or queued for the
// background handler when the app is not running. Only the event's type
// differs, so the app knows the body is ciphertext for its own keys.
func applyWebPush(d *Daemon, a notice) (effects, error) {
	eff, err := applyRaw(d, a)
	if eff.event != nil {
		eff.event.Type = app.EventWebPush
	}
	return eff, err
}

// applyToast keeps the toast in the history and shows it: through the
// shell, or to the app when it is in the foreground.
func applyToast(d *Daemon, a notice) (effects, error) {
	t, err := mpns.ParseToast(a.n.Body)
	if err != nil {
		return d.rejected(a, app.ErrorPayloadFormat, CountPayloadErrors, err), nil
	}
	rec := storage.ToastRecord{App: a.ch.App, Text1: t.Text1, Text2: t.Text2, Param: t.Param, Sound: t.Sound, Silent: t.Silent,
		MessageID: a.n.MessageID, Seq: a.n.Seq, ShownBy: "shell", SentAt: acceptedAt(a.n)}
	if a.foreground {
		rec.ShownBy = "app"
		return effects{count: CountToastsApp, toast: &rec,
			event: &app.Event{Type: app.EventToast, MessageID: a.n.MessageID, Text1: t.Text1, Text2: t.Text2, Param: t.Param}}, nil
	}
	return effects{count: CountToastsShell, toast: &rec,
		show: &platform.Toast{App: a.ch.App, Text1: t.Text1, Text2: t.Text2, Param: t.Param, Sound: t.Sound, Silent: t.Silent}}, nil
}

// applyTile merges the update into the tile's state. Images must come from
// a domain the channel is bound to.
func applyTile(d *Daemon, a notice) (effects, error) {
	t, err := mpns.ParseTile(a.n.Body)
	if err != nil {
		return d.rejected(a, app.ErrorPayloadFormat, CountPayloadErrors, err), nil
	}
	for _, img := range t.RemoteImages() {
		if !mpns.ImageAllowed(img, a.ch.Domains) {
			return d.rejected(a, app.ErrorMessageBadContent, CountBadContent,
				fmt.Errorf("image %s is not from a domain the tile is bound to (%s)", img, strings.Join(a.ch.Domains, ", "))), nil
		}
	}
	rec, err := a.tx.Tile(a.ch.App, t.ID)
	if err != nil {
		return effects{}, err
	}
	state := mpns.TileState{Template: rec.Template, Fields: rec.Fields}
	if err := state.Apply(t); err != nil {
		return d.rejected(a, app.ErrorMessageBadContent, CountBadContent, err), nil
	}
	rec.Template, rec.Fields = state.Template, state.Fields
	return effects{count: CountTilesUpdated, tile: &rec}, nil
}

// applyUnifiedPush queues the body for the app's UnifiedPush connector;
// the distributor calls Message after the commit and deletes the message
// once the app took it, so it arrives at least once. Toasts and tiles have
// no meaning to a UnifiedPush app: they are rejected.
func applyUnifiedPush(d *Daemon, a notice) (effects, error) {
	if k := mpns.Kind(a.n.Kind); k == mpns.KindToast || k == mpns.KindTile {
		return d.rejected(a, app.ErrorPayloadFormat, CountPayloadErrors,
			fmt.Errorf("%s notification for a UnifiedPush app", k)), nil
	}
	_, dropped, err := a.tx.AddUnifiedPush(a.up.Token, upMessageID(a.n.MessageID, a.n.Seq), a.n.Body, MaxUnifiedPushBacklog)
	if err != nil {
		return effects{}, err
	}
	if dropped > 0 {
		d.log.Warn("UnifiedPush: backlog full, oldest messages dropped", "service", a.up.Service, "dropped", dropped)
		if err := a.tx.Count(CountUnifiedPushDropped, dropped); err != nil {
			return effects{}, err
		}
	}
	return effects{count: CountUnifiedPushQueued, push: true, change: Change{Body: a.n.Body, Running: a.running}}, nil
}
