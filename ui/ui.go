// Package ui serves the start-screen page: what each phone's shell would
// show (live tiles, toasts, raw notifications), controls for the phone
// (power, connectivity, foreground app), and a compose panel that sends
// through the real MPNS endpoint as a cloud service would. The page is
// embedded and needs nothing from the network; it updates live over
// server-sent events.
package ui

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/mpns"
)

//go:embed static
var static embed.FS

// Phones is the set of phones the page shows: one for `herald run`, many
// for `herald emulate`.
type Phones interface {
	Names() []string
	Phone(name string) *daemon.Daemon
}

// Single is the one phone of `herald run`.
type Single struct{ D *daemon.Daemon }

// Names returns the one phone's name, "".
func (s Single) Names() []string { return []string{""} }

// Phone returns the phone for "".
func (s Single) Phone(name string) *daemon.Daemon {
	if name != "" {
		return nil
	}
	return s.D
}

// Config configures the UI.
type Config struct {
	Phones Phones
	Logger *slog.Logger
	// Client sends the compose panel's notifications (default: 15 s
	// timeout, the limit MPNS recommended to senders).
	Client *http.Client
	// Hosts are host names the page is also served under (--ui-host), as
	// "name" (any port, e.g. behind a proxy) or "name:port". The listen
	// address and localhost always work; any other Host is refused.
	Hosts []string
	// Key is the page's access key (see guard.go); empty makes a random
	// one for this UI. LoadKey keeps one in a file, so sessions and the
	// printed address outlive a restart.
	Key string
}

// Limits of what the page keeps and shows.
const (
	toastHistory = 30
	maxSSE       = 64
)

// UI is the start-screen server.
type UI struct {
	cfg Config
	log *slog.Logger

	mu   sync.Mutex
	subs map[chan Event]string // SSE subscriber → phone it watches
}

// Event is what the page hears over server-sent events.
type Event struct {
	Phone string `json:"phone"`
	Kind  string `json:"kind"`
	App   string `json:"app,omitempty"`
}

// RawEntry is one raw notification in an app's log, as the phone's
// database keeps it.
type RawEntry struct {
	// At is when the phone received it; SentAt when the service accepted
	// the sender's POST (absent when not known).
	At        time.Time `json:"at"`
	SentAt    time.Time `json:"sent_at,omitzero"`
	MessageID string    `json:"message_id,omitempty"`
	Body      string    `json:"body"`
	// Delivered is false when the app was not running and the phone
	// dropped it, as MPNS did, or queued it for its background handler;
	// Outcome says which: app, handler or dropped.
	Delivered bool   `json:"delivered"`
	Outcome   string `json:"outcome"`
}

// New returns the UI.
func New(cfg Config) *UI {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 15 * time.Second}
	}
	if cfg.Key == "" {
		cfg.Key = NewKey()
	}
	return &UI{cfg: cfg, log: cfg.Logger, subs: map[chan Event]string{}}
}

// Notify passes a phone's change to the pages watching it. It never blocks:
// a page too slow to keep up misses a wakeup, and the next one makes it
// reload the whole state anyway.
func (u *UI) Notify(phone string, c daemon.Change) {
	u.mu.Lock()
	defer u.mu.Unlock()
	ev := Event{Phone: phone, Kind: c.Kind, App: c.App}
	for ch, p := range u.subs {
		if p != phone {
			continue
		}
		select {
		case ch <- ev:
		default:
		}
	}
}

// Handler serves the page and its API.
func (u *UI) Handler() http.Handler {
	mux := http.NewServeMux()
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	mux.Handle("GET /", files)
	mux.HandleFunc("GET /{$}", u.handleIndex)
	mux.HandleFunc("GET /api/phones", u.handlePhones)
	mux.HandleFunc("GET /api/state", u.phone(u.handleState))
	mux.HandleFunc("GET /api/events", u.phone(u.handleEvents))
	mux.HandleFunc("POST /api/power", u.phone(u.handlePower))
	mux.HandleFunc("POST /api/connectivity", u.phone(u.handleConnectivity))
	mux.HandleFunc("POST /api/foreground", u.phone(u.handleForeground))
	mux.HandleFunc("POST /api/open", u.phone(u.handleOpen))
	mux.HandleFunc("POST /api/pin", u.phone(u.handlePin))
	mux.HandleFunc("POST /api/compose", u.phone(u.handleCompose))
	mux.Handle("GET "+MetricsPath, u.metricsHandler())
	return newGuard(u.cfg.Hosts, u.cfg.Key, sameOrigin(mux))
}

// sameOrigin refuses changes that another web page could make through the
// developer's browser: a POST must be JSON (which a cross-site form cannot
// send without a preflight the page never answers) and, when the browser
// says where it comes from, come from this page.
func sameOrigin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				writeError(w, http.StatusUnsupportedMediaType, "send JSON (Content-Type: application/json)")
				return
			}
			if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
				writeError(w, http.StatusForbidden, "cross-origin request refused")
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

type phoneHandler func(w http.ResponseWriter, r *http.Request, name string, d *daemon.Daemon)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

// daemonError maps the daemon's errors to HTTP.
func daemonError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, daemon.ErrBadRequest):
		status = http.StatusBadRequest
	case errors.Is(err, daemon.ErrNotOpened):
		status = http.StatusNotFound
	case errors.Is(err, daemon.ErrQuotaExceeded), errors.Is(err, daemon.ErrChannelExists):
		status = http.StatusConflict
	case errors.Is(err, daemon.ErrOpenFailed):
		status = http.StatusServiceUnavailable
	}
	writeError(w, status, err.Error())
}

// PhoneInfo is one entry of the device picker.
type PhoneInfo struct {
	Name      string `json:"name"`
	Connected bool   `json:"connected"`
}

func (u *UI) handlePhones(w http.ResponseWriter, r *http.Request) {
	names := u.cfg.Phones.Names()
	out := make([]PhoneInfo, 0, len(names))
	for _, n := range names {
		out = append(out, PhoneInfo{Name: n, Connected: u.cfg.Phones.Phone(n).Link().Connected()})
	}
	writeJSON(w, http.StatusOK, out)
}

// Image is a tile image as the page may show it.
type Image struct {
	URL string `json:"url"`
	// Fetch is true only for a remote image from a domain the tile is
	// bound to; the page shows a placeholder for anything else (local
	// app images it does not have, or domains MPNS would have refused).
	Fetch   bool   `json:"fetch"`
	Local   bool   `json:"local"`
	Allowed bool   `json:"allowed"`
	Label   string `json:"label"`
}

// Tile is a live tile with its images resolved.
type Tile struct {
	app.Tile
	Images map[string]Image `json:"images"`
	Pinned bool             `json:"pinned"`
}

// State is everything the page shows for one phone.
type State struct {
	Phone      string                `json:"phone"`
	Connected  bool                  `json:"connected"`
	Offline    bool                  `json:"offline"`
	Power      string                `json:"power"`
	DeviceID   string                `json:"device_id"`
	Foreground string                `json:"foreground"`
	Running    []string              `json:"running"`
	Counters   map[string]int64      `json:"counters"`
	Channels   []app.Channel         `json:"channels"`
	Tiles      []Tile                `json:"tiles"`
	Toasts     []app.Toast           `json:"toasts"`
	Raw        map[string][]RawEntry `json:"raw"`
	Templates  map[string][]string   `json:"templates"`
	// Heartbeat is the link's learned interval on this network, its next
	// upward probe and the day's failed probes (docs/power.md).
	Heartbeat Heartbeat `json:"heartbeat"`
}

// Heartbeat is the part of app.Status the page shows about the heartbeat.
// Probing: the interval in use is an upward probe, not yet proven.
type Heartbeat struct {
	Interval     string     `json:"interval"`
	Settled      bool       `json:"settled"`
	Probing      bool       `json:"probing"`
	Ceiling      string     `json:"ceiling,omitempty"`
	NextProbe    *time.Time `json:"next_probe,omitempty"`
	FailedProbes int        `json:"failed_probes_last_day"`
}

// PhoneState gathers a phone's state (the page's one read).
func (u *UI) PhoneState(ctx context.Context, name string, d *daemon.Daemon) (State, error) {
	st, err := d.Status(ctx)
	if err != nil {
		return State{}, err
	}
	s := State{Phone: name, Connected: st.Connected, Offline: d.Link().Offline(), Power: st.Power, DeviceID: st.DeviceID,
		Foreground: d.Foreground(), Running: st.Running, Counters: st.Counters, Raw: map[string][]RawEntry{}, Tiles: []Tile{},
		Templates: map[string][]string{},
		Heartbeat: Heartbeat{Interval: st.Heartbeat, Settled: st.HeartbeatSettled, Probing: st.HeartbeatProbing,
			Ceiling: st.HeartbeatCeiling, NextProbe: st.NextProbe, FailedProbes: st.FailedProbes}}
	for _, t := range []string{mpns.TemplateWP7, mpns.TemplateFlip, mpns.TemplateIconic, mpns.TemplateCycle} {
		s.Templates[t] = mpns.TemplateFields(t)
	}
	if s.Channels, err = d.Channels(ctx, ""); err != nil {
		return State{}, err
	}
	byApp := map[string]app.Channel{}
	for _, c := range s.Channels {
		byApp[c.App] = c
	}
	tiles, err := d.Tiles(ctx, "")
	if err != nil {
		return State{}, err
	}
	for _, t := range tiles {
		ch := byApp[t.App]
		tile := Tile{Tile: t, Images: map[string]Image{}, Pinned: t.TileID == ""}
		for _, p := range ch.Pinned {
			tile.Pinned = tile.Pinned || p == t.TileID
		}
		for f, v := range t.Fields {
			if mpns.IsImageField(f) && v != "" {
				tile.Images[f] = resolveImage(v, ch.Domains)
			}
		}
		s.Tiles = append(s.Tiles, tile)
	}
	// Primary tiles first, then secondary ones, each by app.
	sort.SliceStable(s.Tiles, func(i, j int) bool {
		a, b := s.Tiles[i], s.Tiles[j]
		if (a.TileID == "") != (b.TileID == "") {
			return a.TileID == ""
		}
		if a.App != b.App {
			return a.App < b.App
		}
		return a.TileID < b.TileID
	})
	if s.Toasts, err = d.Toasts(ctx, "", toastHistory); err != nil {
		return State{}, err
	}
	if s.Raw, err = rawPanel(ctx, d); err != nil {
		return State{}, err
	}
	return s, nil
}

func resolveImage(v string, domains []string) Image {
	img := Image{URL: v, Allowed: mpns.ImageAllowed(v, domains)}
	lower := strings.ToLower(v)
	remote := strings.HasPrefix(lower, "http://") || strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "//")
	img.Local = !remote && img.Allowed
	img.Fetch = remote && img.Allowed
	label := v
	if i := strings.LastIndexAny(label, "/\\"); i >= 0 && i < len(label)-1 {
		label = label[i+1:]
	}
	img.Label = label
	return img
}

func (u *UI) handleState(w http.ResponseWriter, r *http.Request, name string, d *daemon.Daemon) {
	s, err := u.PhoneState(r.Context(), name, d)
	if err != nil {
		daemonError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

// handleEvents streams the phone's changes as server-sent events; the page
// reloads the state on each.
func (u *UI) handleEvents(w http.ResponseWriter, r *http.Request, name string, d *daemon.Daemon) {
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	ch := make(chan Event, 16)
	u.mu.Lock()
	if len(u.subs) >= maxSSE {
		u.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "too many open pages")
		return
	}
	u.subs[ch] = name
	u.mu.Unlock()
	defer func() {
		u.mu.Lock()
		delete(u.subs, ch)
		u.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 1000\n\n")
	fl.Flush()
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-ch:
			b, _ := json.Marshal(ev)
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

func (u *UI) handlePower(w http.ResponseWriter, r *http.Request, name string, d *daemon.Daemon) {
	var req struct {
		Level string `json:"level"`
	}
	if !decode(w, r, &req) {
		return
	}
	if err := d.SetPower(r.Context(), req.Level); err != nil {
		daemonError(w, err)
		return
	}
	u.Notify(name, daemon.Change{Kind: daemon.ChangeChannels})
	writeJSON(w, http.StatusOK, req)
}

func (u *UI) handleConnectivity(w http.ResponseWriter, r *http.Request, name string, d *daemon.Daemon) {
	var req struct {
		Online bool `json:"online"`
	}
	if !decode(w, r, &req) {
		return
	}
	d.Link().SetOffline(!req.Online)
	u.Notify(name, daemon.Change{Kind: daemon.ChangeLink})
	writeJSON(w, http.StatusOK, req)
}

func (u *UI) handleForeground(w http.ResponseWriter, r *http.Request, name string, d *daemon.Daemon) {
	var req struct {
		App string `json:"app"`
	}
	if !decode(w, r, &req) {
		return
	}
	if err := d.SetForeground(r.Context(), req.App); err != nil {
		daemonError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (u *UI) handleOpen(w http.ResponseWriter, r *http.Request, name string, d *daemon.Daemon) {
	var req struct {
		App     string   `json:"app"`
		Toast   bool     `json:"toast"`
		Tile    bool     `json:"tile"`
		Domains []string `json:"domains"`
	}
	if !decode(w, r, &req) {
		return
	}
	domains := req.Domains
	if domains == nil {
		domains = []string{}
	}
	open := appOpenRequest(req.Toast, req.Tile, domains)
	ch, err := d.Open(r.Context(), req.App, open)
	if err != nil {
		daemonError(w, err)
		return
	}
	u.Notify(name, daemon.Change{Kind: daemon.ChangeChannels, App: req.App})
	writeJSON(w, http.StatusOK, ch)
}

func (u *UI) handlePin(w http.ResponseWriter, r *http.Request, name string, d *daemon.Daemon) {
	var req struct {
		App    string `json:"app"`
		TileID string `json:"tile_id"`
	}
	if !decode(w, r, &req) {
		return
	}
	ch, err := d.Pin(r.Context(), req.App, req.TileID)
	if err != nil {
		daemonError(w, err)
		return
	}
	u.Notify(name, daemon.Change{Kind: daemon.ChangeChannels, App: req.App})
	writeJSON(w, http.StatusOK, ch)
}
