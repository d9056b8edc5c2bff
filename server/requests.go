package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/webpush"
	"github.com/heraldpush/herald/wire"
)

// register opens (or finds) a device's channel for an app.
func (s *Server) register(ctx context.Context, deviceID string, f *wire.Register) wire.Registered {
	res := wire.Registered{Type: wire.TypeRegistered, ReqID: f.ReqID}
	fail := func(code, msg string) wire.Registered {
		res.Code, res.Message = code, msg
		return res
	}
	if f.ServiceName != "" && s.cfg.AuthURL == "" {
		return fail(wire.CodeBadRequest, "this service has no TLS listener for authenticated senders")
	}
	var key string
	if f.VAPIDKey != "" {
		if f.ServiceName != "" {
			return fail(wire.CodeBadRequest, "a channel is for certificate-authenticated MPNS senders or for one Web Push application server, not both")
		}
		var err error
		if key, err = webpush.NormalizeKey(f.VAPIDKey); err != nil {
			return fail(wire.CodeBadRequest, err.Error())
		}
	}
	ch, err := s.cfg.Store.ChannelByApp(ctx, deviceID, f.App)
	switch {
	case err == nil:
		if ch.Name != f.Channel || ch.ServiceName != f.ServiceName || ch.VAPIDKey != key {
			return fail(wire.CodeQuotaExceeded, fmt.Sprintf("app %s already has channel %q", f.App, ch.Name))
		}
		if f.Renew {
			tok := newToken(24)
			if err := s.cfg.Store.SetChannelToken(ctx, ch.ID, tok); err != nil {
				return fail(wire.CodeServerError, "rotating the channel URI failed")
			}
			ch.Token = tok
		}
	case errors.Is(err, store.ErrNotFound):
		n, err := s.cfg.Store.CountChannels(ctx, deviceID)
		if err != nil {
			return fail(wire.CodeServerError, "store unavailable")
		}
		if n >= s.cfg.MaxChannelsPerDevice {
			return fail(wire.CodeQuotaExceeded, fmt.Sprintf("device has %d channels, the most allowed", n))
		}
		ch = store.Channel{ID: newToken(12), DeviceID: deviceID, App: f.App, Name: f.Channel, Token: newToken(24),
			ServiceName: f.ServiceName, VAPIDKey: key, CreatedAt: s.cfg.Clock.Now()}
		if err := s.cfg.Store.CreateChannel(ctx, ch); err != nil {
			return fail(wire.CodeServerError, "creating the channel failed")
		}
	default:
		return fail(wire.CodeServerError, "store unavailable")
	}
	res.ChannelID, res.URI = ch.ID, s.channelURI(ch)
	return res
}

// ownChannel loads a channel and checks it belongs to the device; another
// device's channel is reported exactly like a missing one.
func (s *Server) ownChannel(ctx context.Context, deviceID, channelID string) (store.Channel, string) {
	ch, err := s.cfg.Store.Channel(ctx, channelID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ch.DeviceID != deviceID) {
		return ch, wire.CodeNotFound
	}
	if err != nil {
		return ch, wire.CodeServerError
	}
	return ch, ""
}

func (s *Server) unregister(ctx context.Context, deviceID string, f *wire.Unregister) wire.Result {
	res := wire.Result{Type: wire.TypeResult, ReqID: f.ReqID}
	ch, code := s.ownChannel(ctx, deviceID, f.ChannelID)
	if code != "" {
		res.Code = code
		return res
	}
	if err := s.cfg.Store.DeleteChannel(ctx, ch.ID); err != nil {
		res.Code = wire.CodeServerError
	}
	return res
}

func (s *Server) bind(ctx context.Context, deviceID string, f *wire.Bind) wire.Result {
	res := wire.Result{Type: wire.TypeResult, ReqID: f.ReqID}
	ch, code := s.ownChannel(ctx, deviceID, f.ChannelID)
	if code != "" {
		res.Code = code
		return res
	}
	if err := s.cfg.Store.SetBindings(ctx, ch.ID, f.Toast, f.Tile, f.Domains, f.Pinned); err != nil {
		res.Code = wire.CodeServerError
	}
	return res
}
