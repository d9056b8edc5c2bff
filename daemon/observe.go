package daemon

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/wire"
)

// Change kinds passed to Config.OnChange.
const (
	// An applied notification's change has its kind: one of these or any
	// other mpns.Kind.
	ChangeRaw   = string(mpns.KindRaw)   // a raw notification was applied (Body set)
	ChangeToast = string(mpns.KindToast) // a toast was applied
	ChangeTile  = string(mpns.KindTile)  // a tile update was applied

	ChangeLink     = "link"     // the link went up or down
	ChangeChannels = "channels" // channels, bindings, pins or power changed
	ChangeApps     = "apps"     // the foreground app changed
)

// Change tells an observer (the start-screen UI) that the phone's state
// moved, so it can redraw without polling.
type Change struct {
	Kind      string
	App       string
	MessageID string
	Body      []byte
	// Running is whether the app was running when a raw notification
	// arrived; raw to an app that is not running is dropped, as MPNS did.
	Running bool
	At      time.Time
}

// observer is the daemon's part for the UI: the change hook and the app the
// UI has put in the foreground.
type observer struct {
	mu         sync.Mutex
	foreground string
}

func (d *Daemon) changed(c Change) {
	if d.cfg.OnChange == nil {
		return
	}
	if c.At.IsZero() {
		c.At = d.cfg.Clock.Now()
	}
	d.cfg.OnChange(c)
}

// linkChanged reports the link going up or down. A link held offline that
// came up anyway (it was dialling when it was dropped) is dropped again.
func (d *Daemon) linkChanged(connected bool) {
	if connected && d.link.Offline() {
		d.link.Reconnect()
	}
	d.changed(Change{Kind: ChangeLink})
}

// notifyApplied reports the changes of notifications that have just been
// committed.
func (d *Daemon) notifyApplied(ctx context.Context, changes []Change) {
	if d.cfg.OnChange == nil || len(changes) == 0 {
		return
	}
	fg := d.Foreground()
	for _, c := range changes {
		d.changed(c)
	}
	// The UI plays the foreground app and takes its events at once, so
	// they do not pile up for a reader that never comes.
	if fg != "" {
		if err := d.store.AckEvents(ctx, fg, math.MaxInt64); err != nil {
			d.log.Warn("acking the UI's app events failed", "app", fg, "err", err)
		}
	}
}

// Foreground returns the app the UI has put in the foreground, or "".
func (d *Daemon) Foreground() string {
	d.obs.mu.Lock()
	defer d.obs.mu.Unlock()
	return d.obs.foreground
}

// SetForeground makes appID the running app in the foreground, as if the
// user had opened it, and stops the one before; "" shows the start screen.
// Toasts for the foreground app go to the app, not the shell.
func (d *Daemon) SetForeground(ctx context.Context, appID string) error {
	if appID != "" && !wire.ValidName(appID) {
		return ErrBadRequest
	}
	d.obs.mu.Lock()
	defer d.obs.mu.Unlock()
	prev := d.obs.foreground
	if prev != "" && prev != appID {
		if err := d.store.SetRunning(ctx, prev, time.Time{}, false); err != nil {
			return err
		}
		if err := d.store.AckEvents(ctx, prev, math.MaxInt64); err != nil {
			return err
		}
	}
	if appID != "" {
		forever := d.cfg.Clock.Now().Add(100 * 365 * 24 * time.Hour)
		if err := d.store.SetRunning(ctx, appID, forever, true); err != nil {
			return err
		}
	}
	d.obs.foreground = appID
	d.changed(Change{Kind: ChangeApps, App: appID})
	return nil
}

// observeAPI reports changes made through the local API (the CLI opening
// channels, setting power ...).
func (d *Daemon) observeAPI(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.Method != http.MethodGet {
			d.changed(Change{Kind: ChangeChannels, App: r.PathValue("app")})
		}
	})
}
