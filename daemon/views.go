package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/storage"
)

// The daemon's reads for the local API, the UI and the emulator. They
// answer in app types, the public contract; the storage records stay
// behind the daemon.

// Channel returns app's channel, or ErrNotOpened.
func (d *Daemon) Channel(ctx context.Context, appID string) (app.Channel, error) {
	ch, err := d.channel(ctx, appID)
	if err != nil {
		return app.Channel{}, err
	}
	return toAppChannel(ch), nil
}

// channel is the stored channel of app, or ErrNotOpened.
func (d *Daemon) channel(ctx context.Context, appID string) (storage.LocalChannel, error) {
	ch, err := d.store.Channel(ctx, appID)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.LocalChannel{}, fmt.Errorf("%w: %s", ErrNotOpened, appID)
	}
	return ch, err
}

// Channels lists the channels of app, or of every app for "".
func (d *Daemon) Channels(ctx context.Context, appID string) ([]app.Channel, error) {
	chans, err := d.store.Channels(ctx, appID)
	return convert(chans, err, toAppChannel)
}

// Tiles lists the live tiles of app, or of every app for "".
func (d *Daemon) Tiles(ctx context.Context, appID string) ([]app.Tile, error) {
	tiles, err := d.store.Tiles(ctx, appID)
	return convert(tiles, err, func(t storage.TileRecord) app.Tile {
		return app.Tile(t) // the same fields: see toAppChannel
	})
}

// Toasts lists the newest limit toasts of app, or of every app for "",
// oldest first; limit 0 lists them all.
func (d *Daemon) Toasts(ctx context.Context, appID string, limit int) ([]app.Toast, error) {
	toasts, err := d.store.Toasts(ctx, appID, limit)
	return convert(toasts, err, func(t storage.ToastRecord) app.Toast {
		return app.Toast{ID: t.ID, App: t.App, Text1: t.Text1, Text2: t.Text2, Param: t.Param, Sound: t.Sound,
			Silent: t.Silent, ShownBy: t.ShownBy, MessageID: t.MessageID, SentAt: t.SentAt, ReceivedAt: t.ReceivedAt}
	})
}

// RawLog lists the newest raw notifications of app, or of every app for
// "", oldest first: the phone keeps storage.RawLogPerApp per app.
func (d *Daemon) RawLog(ctx context.Context, appID string) ([]app.Raw, error) {
	recs, err := d.store.RawLog(ctx, appID)
	return convert(recs, err, func(r storage.RawRecord) app.Raw {
		return app.Raw{ID: r.ID, App: r.App, MessageID: r.MessageID, Body: r.Body, Outcome: r.Outcome, Seq: r.Seq,
			SentAt: r.SentAt, ReceivedAt: r.ReceivedAt}
	})
}

// convert maps the records a store read returned to API types; the list is
// never nil, so it encodes as [] when empty.
func convert[S, T any](recs []S, err error, f func(S) T) ([]T, error) {
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(recs))
	for _, r := range recs {
		out = append(out, f(r))
	}
	return out, nil
}

// PendingEvents lists up to limit events queued for app that it has not
// acknowledged.
func (d *Daemon) PendingEvents(ctx context.Context, appID string, limit int) ([]app.Event, error) {
	evs, err := d.store.Events(ctx, appID, 0, limit)
	if err != nil {
		return nil, err
	}
	out := make([]app.Event, 0, len(evs))
	for _, e := range evs {
		var ev app.Event
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			return nil, fmt.Errorf("daemon: event %d of %s: %w", e.ID, appID, err)
		}
		ev.ID = e.ID
		out = append(out, ev)
	}
	return out, nil
}

// toAppChannel converts a stored channel to the API's. The owner is not
// the channel's but its app id's (withOwners fills it in for lists).
func toAppChannel(c storage.LocalChannel) app.Channel {
	return app.Channel{App: c.App, Name: c.Name, ChannelID: c.ChannelID, URI: c.URI, ServiceName: c.ServiceName,
		Toast: c.Toast, Tile: c.Tile, Domains: orEmpty(c.Domains), Pinned: orEmpty(c.Pinned), CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

// orEmpty keeps a list a JSON array when it has nothing in it: a channel
// just opened has nil lists, one read back from the database empty ones.
func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
