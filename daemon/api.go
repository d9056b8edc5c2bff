package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/storage"
)

// Handler returns the local API.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", d.handleStatus)
	mux.HandleFunc("GET /v1/channels", d.handleChannels)
	mux.HandleFunc("GET /v1/tiles", d.handleTiles)
	mux.HandleFunc("GET /v1/toasts", d.handleToasts)
	mux.HandleFunc("PUT /v1/power", d.handlePower)
	mux.HandleFunc("GET /v1/apps/{app}/channel", d.handleFind)
	mux.HandleFunc("POST /v1/apps/{app}/channel", d.handleOpen)
	mux.HandleFunc("DELETE /v1/apps/{app}/channel", d.handleClose)
	mux.HandleFunc("PATCH /v1/apps/{app}/channel/bindings", d.handleBind)
	mux.HandleFunc("POST /v1/apps/{app}/pins", d.handlePin)
	mux.HandleFunc("GET /v1/apps/{app}/events", d.handleEvents)
	mux.HandleFunc("DELETE /v1/apps/{app}/events", d.handleStopEvents)
	mux.HandleFunc("POST /v1/apps/{app}/events/ack", d.handleAck)
	return d.observeAPI(mux)
}

func (d *Daemon) serveAPI(ctx context.Context, ln net.Listener) {
	srv := &http.Server{
		Handler:           d.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		d.log.Error("local API stopped", "err", err)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, app.ErrorResponse{Code: code, Message: msg})
}

// fail maps the daemon's errors onto the local API's codes.
func fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrBadRequest):
		writeError(w, http.StatusBadRequest, app.CodeBadRequest, err.Error())
	case errors.Is(err, ErrQuotaExceeded):
		writeError(w, http.StatusConflict, app.CodeQuotaExceeded, err.Error())
	case errors.Is(err, ErrChannelExists):
		writeError(w, http.StatusConflict, app.CodeChannelExists, err.Error())
	case errors.Is(err, ErrNotOpened):
		writeError(w, http.StatusNotFound, app.CodeNotOpened, err.Error())
	case errors.Is(err, ErrOpenFailed):
		writeError(w, http.StatusServiceUnavailable, app.CodeChannelOpenFailed, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, app.CodeInternal, err.Error())
	}
}

// decode reads a small JSON body; unknown fields are errors so typos in
// clients show up at once.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, app.CodeBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

func toAppChannel(c storage.LocalChannel) app.Channel {
	return app.Channel{App: c.App, Name: c.Name, ChannelID: c.ChannelID, URI: c.URI, ServiceName: c.ServiceName,
		Toast: c.Toast, Tile: c.Tile, Domains: c.Domains, Pinned: c.Pinned, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
}

func (d *Daemon) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := d.Status(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// Status gathers the daemon's state.
func (d *Daemon) Status(ctx context.Context) (app.Status, error) {
	ls := d.link.Stats()
	st := app.Status{Service: d.cfg.Service, State: ls.State, Connected: ls.Connected, Heartbeat: ls.Heartbeat.String(), Reconnects: ls.Reconnects, LastError: ls.LastError,
		Network: ls.Network, LearnedIdle: learnedIdle(ls.Learned), HeartbeatSettled: ls.Learned.Settled,
		Wakeups: app.Wakeups{Heartbeats: ls.Wakeups.Heartbeats, Reconnects: ls.Wakeups.Reconnects, Acks: ls.Wakeups.Acks, Total: ls.Wakeups.Total()}}
	if ls.Connected {
		since := ls.Since
		st.Since = &since
	}
	if ls.State == channel.StateWaiting {
		at := ls.RetryAt
		st.RetryAt = &at
	}
	// The counters are read before the applied sequence number: a batch
	// moves both in one transaction and both only grow, so read in this
	// order a status never shows counts for notifications beyond the
	// sequence number it reports as applied.
	var err error
	if st.Counters, err = d.store.Counters(ctx); err != nil {
		return st, err
	}
	id, err := d.store.Identity(ctx, d.cfg.Service)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return st, err
	}
	st.DeviceID, st.AppliedSeq = id.DeviceID, id.AppliedSeq
	if st.Power, err = d.power(ctx); err != nil {
		return st, err
	}
	if st.Channels, err = d.store.CountChannels(ctx); err != nil {
		return st, err
	}
	if st.Running, err = d.store.RunningApps(ctx, d.cfg.Clock.Now()); err != nil {
		return st, err
	}
	return st, nil
}

// learnedIdle describes the bounds learned on the network's idle timeout.
func learnedIdle(l channel.Learned) string {
	switch {
	case l.Good > 0 && l.Bad > 0:
		return "≥ " + l.Good.String() + ", < " + l.Bad.String()
	case l.Good > 0:
		return "≥ " + l.Good.String()
	case l.Bad > 0:
		return "< " + l.Bad.String()
	}
	return ""
}

func (d *Daemon) handleChannels(w http.ResponseWriter, r *http.Request) {
	chans, err := d.store.Channels(r.Context(), r.URL.Query().Get("app"))
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]app.Channel, 0, len(chans))
	for _, c := range chans {
		out = append(out, toAppChannel(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handleTiles(w http.ResponseWriter, r *http.Request) {
	tiles, err := d.store.Tiles(r.Context(), r.URL.Query().Get("app"))
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]app.Tile, 0, len(tiles))
	for _, t := range tiles {
		out = append(out, app.Tile{App: t.App, TileID: t.TileID, Template: t.Template, Fields: t.Fields, UpdatedAt: t.UpdatedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handleToasts(w http.ResponseWriter, r *http.Request) {
	toasts, err := d.store.Toasts(r.Context(), r.URL.Query().Get("app"), 0)
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]app.Toast, 0, len(toasts))
	for _, t := range toasts {
		out = append(out, app.Toast{App: t.App, Text1: t.Text1, Text2: t.Text2, Param: t.Param, Sound: t.Sound, Silent: t.Silent,
			ShownBy: t.ShownBy, MessageID: t.MessageID, SentAt: t.SentAt, ReceivedAt: t.ReceivedAt})
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *Daemon) handlePower(w http.ResponseWriter, r *http.Request) {
	var req app.PowerRequest
	if !decode(w, r, &req) {
		return
	}
	if err := d.SetPower(r.Context(), req.Level); err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (d *Daemon) handleFind(w http.ResponseWriter, r *http.Request) {
	ch, err := d.store.Channel(r.Context(), r.PathValue("app"))
	if errors.Is(err, storage.ErrNotFound) {
		writeError(w, http.StatusNotFound, app.CodeNotOpened, "no channel for "+r.PathValue("app"))
		return
	}
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toAppChannel(ch))
}

func (d *Daemon) handleOpen(w http.ResponseWriter, r *http.Request) {
	var req app.OpenRequest
	if !decode(w, r, &req) {
		return
	}
	ch, err := d.Open(r.Context(), r.PathValue("app"), req)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toAppChannel(ch))
}

func (d *Daemon) handleClose(w http.ResponseWriter, r *http.Request) {
	if err := d.CloseChannel(r.Context(), r.PathValue("app")); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (d *Daemon) handleBind(w http.ResponseWriter, r *http.Request) {
	var req app.BindRequest
	if !decode(w, r, &req) {
		return
	}
	ch, err := d.Bind(r.Context(), r.PathValue("app"), req)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toAppChannel(ch))
}

func (d *Daemon) handlePin(w http.ResponseWriter, r *http.Request) {
	var req app.PinRequest
	if !decode(w, r, &req) {
		return
	}
	ch, err := d.Pin(r.Context(), r.PathValue("app"), req.TileID)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toAppChannel(ch))
}
