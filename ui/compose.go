package ui

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/storage"
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

// Request builds the MPNS HTTP request for c to uri.
func (c ComposeRequest) Request(uri string) (*http.Request, error) {
	kind := mpns.Kind(c.Kind)
	var payload []byte
	switch kind {
	case mpns.KindToast:
		t := mpns.Toast{Text1: c.Text1, Text2: c.Text2, Param: c.Param}
		payload = t.XML()
	case mpns.KindTile:
		t := mpns.Tile{ID: c.TileID, Template: c.Template}
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
		payload = t.XML()
	case mpns.KindRaw:
		payload = []byte(c.Body)
	default:
		return nil, fmt.Errorf("kind must be toast, tile or raw, not %q", c.Kind)
	}
	d := mpns.Delay(c.Delay)
	if d != mpns.Immediate && d != mpns.Within450s && d != mpns.Within900s {
		return nil, errors.New("delay must be 0, 450 or 900")
	}
	req, err := http.NewRequest(http.MethodPost, uri, bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("bad channel URI: %w", err)
	}
	// What MPNS sender libraries send.
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("Accept", "application/*")
	req.Header.Set(mpns.HeaderNotificationClass, strconv.Itoa(mpns.ClassFor(kind, d)))
	req.Header.Set(mpns.HeaderMessageID, newUUID())
	if t := kind.Target(); t != "" {
		req.Header.Set(mpns.HeaderTarget, t)
	}
	return req, nil
}

// handleCompose sends a notification to one of the phone's channels through
// the notification service's MPNS endpoint. Only URIs the phone holds are
// posted to, so the page cannot aim the server at arbitrary addresses.
func (u *UI) handleCompose(w http.ResponseWriter, r *http.Request, name string, d *daemon.Daemon) {
	var c ComposeRequest
	if !decode(w, r, &c) {
		return
	}
	ch, err := d.Store().Channel(r.Context(), c.App)
	if errors.Is(err, storage.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("%q has no channel on this phone", c.App))
		return
	}
	if err != nil {
		daemonError(w, err)
		return
	}
	req, err := c.Request(ch.URI)
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
	resp, err := u.cfg.Client.Do(req.WithContext(r.Context()))
	if err != nil {
		res.Error = err.Error()
		u.log.Warn("compose: sending failed", "phone", name, "app", c.App, "err", err)
		writeJSON(w, http.StatusOK, res)
		return
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	res.Status, res.Body = resp.StatusCode, string(msg)
	for k := range resp.Header {
		res.Headers[k] = resp.Header.Get(k)
	}
	writeJSON(w, http.StatusOK, res)
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
