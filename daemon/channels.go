package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/storage"
	"github.com/heraldpush/herald/webpush"
	"github.com/heraldpush/herald/wire"
)

// DefaultChannelName is used when an app opens a channel without naming it.
const DefaultChannelName = "default"

// Open opens app's channel, or finds it, and applies any bindings in req.
func (d *Daemon) Open(ctx context.Context, appID string, req app.OpenRequest) (app.Channel, error) {
	if !wire.ValidName(appID) {
		return app.Channel{}, fmt.Errorf("%w: app id %q must be 1-%d characters without spaces or slashes", ErrBadRequest, appID, wire.MaxNameLength)
	}
	if req.Channel == "" {
		req.Channel = DefaultChannelName
	}
	if !wire.ValidName(req.Channel) || (req.ServiceName != "" && !wire.ValidName(req.ServiceName)) {
		return app.Channel{}, fmt.Errorf("%w: channel and service names must be 1-%d characters without spaces or slashes", ErrBadRequest, wire.MaxNameLength)
	}
	if req.Domains != nil {
		if err := validDomains(*req.Domains); err != nil {
			return app.Channel{}, err
		}
	}
	if req.VAPIDKey != "" {
		key, err := webpush.NormalizeKey(req.VAPIDKey)
		if err != nil {
			return app.Channel{}, fmt.Errorf("%w: vapid_key: %w", ErrBadRequest, err)
		}
		req.VAPIDKey = key
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	now := d.cfg.Clock.Now()

	ch, err := d.store.Channel(ctx, appID)
	found := err == nil
	switch {
	case found && (ch.Name != req.Channel || ch.ServiceName != req.ServiceName || ch.VAPIDKey != req.VAPIDKey):
		return app.Channel{}, fmt.Errorf("%w: %s already has channel %q", ErrChannelExists, appID, ch.Name)
	case !found && !errors.Is(err, storage.ErrNotFound):
		return app.Channel{}, err
	case !found:
		n, err := d.store.CountChannels(ctx)
		if err != nil {
			return app.Channel{}, err
		}
		if n >= d.cfg.MaxChannels {
			return app.Channel{}, fmt.Errorf("%w: the device has %d channels, the most allowed", ErrQuotaExceeded, n)
		}
		ch = storage.LocalChannel{App: appID, Name: req.Channel, ServiceName: req.ServiceName, VAPIDKey: req.VAPIDKey, CreatedAt: now}
	}

	if !found || req.Renew {
		octx, cancel := context.WithTimeout(ctx, d.cfg.OpenTimeout)
		id, uri, err := d.link.RegisterChannel(octx, wire.Register{App: appID, Channel: req.Channel, ServiceName: req.ServiceName,
			VAPIDKey: req.VAPIDKey, Renew: req.Renew})
		cancel()
		if err != nil {
			return app.Channel{}, openError(err)
		}
		changed := found && uri != ch.URI
		ch.ChannelID, ch.URI = id, uri
		ch.UpdatedAt = now
		if err := d.store.SaveChannel(ctx, ch); err != nil {
			return app.Channel{}, err
		}
		if changed {
			d.announceURI(ctx, ch)
		}
	}

	if req.Toast != nil || req.Tile != nil || req.Domains != nil {
		if ch, err = d.bindLocked(ctx, ch, app.BindRequest{Toast: req.Toast, Tile: req.Tile, Domains: req.Domains}); err != nil {
			return app.Channel{}, err
		}
	}
	return toAppChannel(ch), nil
}

func openError(err error) error {
	var se *channel.ServiceError
	if errors.As(err, &se) && se.Code == wire.CodeQuotaExceeded {
		return fmt.Errorf("%w: %s", ErrQuotaExceeded, se.Message)
	}
	return fmt.Errorf("%w: %w", ErrOpenFailed, err)
}

func validDomains(domains []string) error {
	if len(domains) > wire.MaxDomains {
		return fmt.Errorf("%w: at most %d domains", ErrBadRequest, wire.MaxDomains)
	}
	for _, dom := range domains {
		if dom == "" || len(dom) > wire.MaxDomainLen {
			return fmt.Errorf("%w: bad domain %q", ErrBadRequest, dom)
		}
	}
	return nil
}

// Bind changes app's shell bindings.
func (d *Daemon) Bind(ctx context.Context, appID string, req app.BindRequest) (app.Channel, error) {
	if req.Domains != nil {
		if err := validDomains(*req.Domains); err != nil {
			return app.Channel{}, err
		}
	}
	return d.rebind(ctx, appID, nil, req)
}

// Pin pins a secondary tile of app, so tile updates for it are delivered.
func (d *Daemon) Pin(ctx context.Context, appID, tileID string) (app.Channel, error) {
	if tileID == "" || len(tileID) > wire.MaxDomainLen {
		return app.Channel{}, fmt.Errorf("%w: bad tile id", ErrBadRequest)
	}
	return d.rebind(ctx, appID, func(ch *storage.LocalChannel) error {
		switch {
		case slices.Contains(ch.Pinned, tileID):
			return errUnchanged
		case len(ch.Pinned) >= wire.MaxPinned:
			return fmt.Errorf("%w: at most %d pinned tiles", ErrQuotaExceeded, wire.MaxPinned)
		}
		ch.Pinned = append(ch.Pinned, tileID)
		return nil
	}, app.BindRequest{})
}

// errUnchanged is a rebind change saying there is nothing to store.
var errUnchanged = errors.New("unchanged")

// rebind changes app's stored channel with change (when not nil), then
// applies req and stores and sends the bindings, all under the channel
// lock.
func (d *Daemon) rebind(ctx context.Context, appID string, change func(*storage.LocalChannel) error, req app.BindRequest) (app.Channel, error) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	ch, err := d.channel(ctx, appID)
	if err != nil {
		return app.Channel{}, err
	}
	if change == nil {
		change = func(*storage.LocalChannel) error { return nil }
	}
	switch err := change(&ch); {
	case errors.Is(err, errUnchanged):
		return toAppChannel(ch), nil
	case err != nil:
		return app.Channel{}, err
	}
	if ch, err = d.bindLocked(ctx, ch, req); err != nil {
		return app.Channel{}, err
	}
	return toAppChannel(ch), nil
}

// bindLocked stores the bindings and tells the service. If the link is
// down the service learns them when it comes back (resync).
func (d *Daemon) bindLocked(ctx context.Context, ch storage.LocalChannel, req app.BindRequest) (storage.LocalChannel, error) {
	if req.Toast != nil {
		ch.Toast = *req.Toast
	}
	if req.Tile != nil {
		ch.Tile = *req.Tile
	}
	if req.Domains != nil {
		ch.Domains = *req.Domains
	}
	ch.UpdatedAt = d.cfg.Clock.Now()
	if err := d.store.SaveChannel(ctx, ch); err != nil {
		return storage.LocalChannel{}, err
	}
	if d.link.Connected() {
		bctx, cancel := context.WithTimeout(ctx, d.cfg.OpenTimeout)
		err := d.link.Bind(bctx, bindFrame(ch))
		cancel()
		if err != nil {
			d.log.Warn("binding on the service failed; will retry on reconnect", "app", ch.App, "err", err)
		}
	}
	return ch, nil
}

func bindFrame(ch storage.LocalChannel) wire.Bind {
	return wire.Bind{ChannelID: ch.ChannelID, Toast: ch.Toast, Tile: ch.Tile, Domains: ch.Domains, Pinned: ch.Pinned}
}

// CloseChannel closes app's channel: unbinds it and forgets it, here and on
// the service, whose URI then answers 404 Expired.
func (d *Daemon) CloseChannel(ctx context.Context, appID string) error {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	ch, err := d.channel(ctx, appID)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, d.cfg.OpenTimeout)
	err = d.link.Unregister(cctx, ch.ChannelID)
	cancel()
	var se *channel.ServiceError
	if err != nil && !(errors.As(err, &se) && se.Code == wire.CodeNotFound) {
		return fmt.Errorf("%w: %w", ErrOpenFailed, err)
	}
	return d.store.DeleteChannel(ctx, appID)
}

// resync makes the service's view of every channel match the device's,
// after each (re)connection: it re-registers each channel (harmless when
// the service has it; a fresh URI when the service lost it) and re-sends
// its bindings.
func (d *Daemon) resync(ctx context.Context) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	chans, err := d.store.Channels(ctx, "")
	if err != nil {
		d.log.Error("resync: listing channels failed", "err", err)
		return
	}
	for _, ch := range chans {
		rctx, cancel := context.WithTimeout(ctx, d.cfg.OpenTimeout)
		id, uri, err := d.link.RegisterChannel(rctx, wire.Register{App: ch.App, Channel: ch.Name, ServiceName: ch.ServiceName,
			VAPIDKey: ch.VAPIDKey})
		if err == nil && (id != ch.ChannelID || uri != ch.URI) {
			ch.ChannelID, ch.URI, ch.UpdatedAt = id, uri, d.cfg.Clock.Now()
			if err = d.store.SaveChannel(ctx, ch); err == nil {
				d.announceURI(ctx, ch)
			}
		}
		if err == nil {
			err = d.link.Bind(rctx, bindFrame(ch))
		}
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("resync failed", "app", ch.App, "err", err)
			}
			return
		}
	}
}

// uriChanged handles the service announcing a new URI for a channel.
func (d *Daemon) uriChanged(ctx context.Context, channelID, uri string) {
	d.opMu.Lock()
	defer d.opMu.Unlock()
	ch, err := d.store.ChannelByID(ctx, channelID)
	if err != nil || ch.URI == uri {
		return
	}
	ch.URI, ch.UpdatedAt = uri, d.cfg.Clock.Now()
	if err := d.store.SaveChannel(ctx, ch); err != nil {
		d.log.Error("saving new channel URI failed", "app", ch.App, "err", err)
		return
	}
	d.announceURI(ctx, ch)
}

// announceURI tells a running app its channel has a new URI
// (ChannelUriUpdated).
func (d *Daemon) announceURI(ctx context.Context, ch storage.LocalChannel) {
	d.log.Info("channel URI changed", "app", ch.App, "uri", ch.URI)
	d.appEvent(ctx, ch.App, app.Event{Type: app.EventURI, URI: ch.URI})
	if d.up != nil {
		d.up.uriChanged(ctx, ch.App, ch.URI)
	}
}

// appEvent queues an event for app if it is running.
func (d *Daemon) appEvent(ctx context.Context, appID string, e app.Event) {
	running, err := d.store.RunningApps(ctx, d.cfg.Clock.Now())
	if err != nil || !slices.Contains(running, appID) {
		return
	}
	e.App = appID
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	add := d.store.AddEvent
	if e.Type == app.EventStatus {
		// Only where the link stands now matters: a reconnecting app
		// gets one connection event, not every state it missed.
		add = d.store.ReplaceEvent
	}
	if _, err := add(ctx, appID, e.Type, b, d.cfg.Clock.Now()); err != nil {
		d.log.Warn("queueing app event failed", "app", appID, "err", err)
		return
	}
	d.hub.wake(appID)
}

func (d *Daemon) broadcastStatus(connected bool) {
	ctx := d.ctx
	running, err := d.store.RunningApps(ctx, d.cfg.Clock.Now())
	if err != nil {
		return
	}
	for _, a := range running {
		c := connected
		d.appEvent(ctx, a, app.Event{Type: app.EventStatus, Connected: &c})
	}
}

// power returns the device's power level: the level set with SetPower,
// else the OS's.
func (d *Daemon) power(ctx context.Context) (string, error) {
	level, err := d.store.Setting(ctx, "power", "auto")
	if err != nil || level != "auto" {
		return level, err
	}
	if d.cfg.PowerSource == nil {
		return string(platform.PowerNormal), nil
	}
	l, err := d.cfg.PowerSource()
	if err != nil {
		d.log.Warn("reading the power level failed; assuming normal", "err", err)
		return string(platform.PowerNormal), nil
	}
	return string(l), nil
}

// SetPower sets the device's power level (normal, low, critical, or auto to
// follow the OS again) and reports it to the service.
func (d *Daemon) SetPower(ctx context.Context, level string) error {
	if level != "auto" {
		if _, err := platform.ParsePowerLevel(level); err != nil {
			return fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
	}
	old, err := d.power(ctx)
	if err != nil {
		return err
	}
	if err := d.store.SetSetting(ctx, "power", level); err != nil {
		return err
	}
	if level, err = d.power(ctx); err != nil {
		return err
	}
	if old != level {
		running, _ := d.store.RunningApps(ctx, d.cfg.Clock.Now())
		for _, a := range running {
			d.appEvent(ctx, a, app.Event{Type: app.EventError, ErrorKind: app.ErrorPowerLevelChanged, Power: level,
				Message: "power level changed to " + level})
		}
	}
	if d.link.Connected() {
		pctx, cancel := context.WithTimeout(ctx, d.cfg.OpenTimeout)
		defer cancel()
		if err := d.link.SetState(pctx, level, d.minUrgency(ctx, level)); err != nil {
			d.log.Warn("reporting power level failed; the next hello carries it", "err", err)
		}
	}
	return nil
}
