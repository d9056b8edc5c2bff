package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/mpns"
)

func appOpenRequest(toast, tile bool, domains []string) app.OpenRequest {
	return app.OpenRequest{Toast: &toast, Tile: &tile, Domains: &domains}
}

// ComposeRequest is a notification the compose panel sends to an app's
// channel.
type ComposeRequest struct {
	App   string `json:"app"`
	Kind  string `json:"kind"`  // toast, tile or raw
	Delay int    `json:"delay"` // 0, 450 or 900 seconds
	// Toast.
	Text1 string `json:"text1,omitempty"`
	Text2 string `json:"text2,omitempty"`
	Param string `json:"param,omitempty"`
	// Tile.
	TileID   string            `json:"tile_id,omitempty"`
	Template string            `json:"template,omitempty"`
	Fields   map[string]string `json:"fields,omitempty"`
	Clear    []string          `json:"clear,omitempty"`
	// Raw.
	Body string `json:"body,omitempty"`
}

// ComposeResult is what the service answered, as a cloud service sees it.
type ComposeResult struct {
	URI            string            `json:"uri"`
	RequestHeaders map[string]string `json:"request_headers"`
	Payload        string            `json:"payload"`
	Status         int               `json:"status"`
	Headers        map[string]string `json:"headers"`
	Body           string            `json:"body,omitempty"`
	Error          string            `json:"error,omitempty"`
}

// Message is the notification c describes.
func (c ComposeRequest) Message() (mpns.Message, error) {
	switch mpns.Kind(c.Kind) {
	case mpns.KindToast:
		return &mpns.Toast{Text1: c.Text1, Text2: c.Text2, Param: c.Param}, nil
	case mpns.KindTile:
		t := &mpns.Tile{ID: c.TileID, Template: c.Template}
		names := make([]string, 0, len(c.Fields))
		for n := range c.Fields {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if v := c.Fields[n]; v != "" {
				t.Fields = append(t.Fields, mpns.Field{Name: n, Value: v})
			}
		}
		for _, n := range c.Clear {
			t.Fields = append(t.Fields, mpns.Field{Name: n, Clear: true})
		}
		return t, nil
	case mpns.KindRaw:
		return mpns.Raw(c.Body), nil
	}
	return nil, fmt.Errorf("kind must be %s, not %q", mpns.KindNames(), c.Kind)
}

// Request builds the MPNS HTTP request for c to uri.
func (c ComposeRequest) Request(ctx context.Context, uri string) (*http.Request, error) {
	m, err := c.Message()
	if err != nil {
		return nil, err
	}
	return mpns.NewRequest(ctx, uri, m, mpns.SendOptions{Delay: mpns.Delay(c.Delay)})
}

// handleCompose sends a notification to one of the phone's channels through
// the notification service's MPNS endpoint. Only URIs the phone holds are
// posted to, so the page cannot aim the server at arbitrary addresses.
func (u *UI) handleCompose(w http.ResponseWriter, r *http.Request, name string, d *daemon.Daemon) {
	var c ComposeRequest
	if !decode(w, r, &c) {
		return
	}
	ch, err := d.Channel(r.Context(), c.App)
	if errors.Is(err, daemon.ErrNotOpened) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%q has no channel on this phone", c.App))
		return
	}
	if err != nil {
		daemonError(w, err)
		return
	}
	req, err := c.Request(r.Context(), ch.URI)
	if errors.Is(err, mpns.ErrBadClass) {
		writeError(w, http.StatusBadRequest, "delay must be 0, 450 or 900")
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res := ComposeResult{URI: ch.URI, RequestHeaders: map[string]string{}, Headers: map[string]string{}}
	for k := range req.Header {
		res.RequestHeaders[k] = req.Header.Get(k)
	}
	body, _ := req.GetBody()
	p, _ := io.ReadAll(body)
	res.Payload = string(p)
	sent, err := (&mpns.Client{HTTP: u.cfg.Client}).Do(req)
	if err != nil {
		res.Error = err.Error()
		u.log.Warn("compose: sending failed", "phone", name, "app", c.App, "err", err)
		writeJSON(w, http.StatusOK, res)
		return
	}
	res.Status, res.Body = sent.Status, sent.Error
	for k := range sent.Header {
		res.Headers[k] = sent.Header.Get(k)
	}
	writeJSON(w, http.StatusOK, res)
}
