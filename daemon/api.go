package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	mux.HandleFunc("GET /v1/ui", d.handleStartScreen)
	mux.HandleFunc("GET /v1/apps/{app}/channel", d.handleFind)
	mux.HandleFunc("POST /v1/apps/{app}/channel", d.handleOpen)
	mux.HandleFunc("DELETE /v1/apps/{app}/channel", d.handleClose)
	mux.HandleFunc("PATCH /v1/apps/{app}/channel/bindings", d.handleBind)
	mux.HandleFunc("POST /v1/apps/{app}/pins", d.handlePin)
	mux.HandleFunc("GET /v1/apps/{app}/events", d.handleEvents)
	mux.HandleFunc("DELETE /v1/apps/{app}/events", d.handleStopEvents)
	mux.HandleFunc("POST /v1/apps/{app}/events/ack", d.handleAck)
	return d.observeAPI(d.guardPeer(mux))
}

// singlePhone refuses requests that name an emulated phone: a daemon is
// one phone, and answering for "phone-0042" as if it were that phone would
// hide that the caller talks to the wrong process.
func singlePhone(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.Header.Get(app.DeviceHeader)
		if name == "" {
			name = r.URL.Query().Get("device")
		}
		if name != "" {
			writeError(w, http.StatusBadRequest, app.CodeBadRequest, fmt.Sprintf(
				"this daemon is a single phone, not herald emulate: there is no device %q here; drop --device (and HERALD_DEVICE), or pass the emulator's socket with --socket", name))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (d *Daemon) serveAPI(ctx context.Context, ln net.Listener) {
	srv := &http.Server{
		Handler:           singlePhone(d.Handler()),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnContext:       ConnContext(d.cfg.PeerCred),
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
		HeartbeatCeiling: ls.Ceiling.String(), HeartbeatProbing: ls.Learned.Probe != 0, FailedProbes: ls.FailedLastDay,
		Wakeups: app.Wakeups{Heartbeats: ls.Wakeups.Heartbeats, Reconnects: ls.Wakeups.Reconnects, Acks: ls.Wakeups.Acks, Total: ls.Wakeups.Total()}}
	if ls.Connected {
		since := ls.Since
		st.Since = &since
	}
	if next := ls.Learned.NextProbe; !next.IsZero() && ls.Learned.Settled && ls.Learned.Probe == 0 {
		st.NextProbe = &next
	}
	switch {
	case d.link.Offline():
		st.State, st.Connected, st.Since = app.StateOffline, false, nil
	case ls.State == channel.StateWaiting:
		at := ls.RetryAt
		st.RetryAt = &at
	}
	st.Config = d.cfg.Effective
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
	v, err := d.Channels(r.Context(), r.URL.Query().Get("app"))
	if err == nil {
		err = d.withOwners(r.Context(), v)
	}
	answer(w, v, err)
}

func (d *Daemon) handleTiles(w http.ResponseWriter, r *http.Request) {
	v, err := d.Tiles(r.Context(), r.URL.Query().Get("app"))
	answer(w, v, err)
}

func (d *Daemon) handleToasts(w http.ResponseWriter, r *http.Request) {
	v, err := d.Toasts(r.Context(), r.URL.Query().Get("app"), 0)
	answer(w, v, err)
}

// answer writes v, or the error.
func answer[T any](w http.ResponseWriter, v T, err error) {
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
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
	v, err := d.Channel(r.Context(), r.PathValue("app"))
	answer(w, v, err)
}

func (d *Daemon) handleOpen(w http.ResponseWriter, r *http.Request) {
	var req app.OpenRequest
	if !decode(w, r, &req) {
		return
	}
	v, err := d.Open(r.Context(), r.PathValue("app"), req)
	answer(w, v, err)
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
	v, err := d.Bind(r.Context(), r.PathValue("app"), req)
	answer(w, v, err)
}

func (d *Daemon) handlePin(w http.ResponseWriter, r *http.Request) {
	var req app.PinRequest
	if !decode(w, r, &req) {
		return
	}
	v, err := d.Pin(r.Context(), r.PathValue("app"), req.TileID)
	answer(w, v, err)
}
