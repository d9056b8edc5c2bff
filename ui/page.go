package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"

	"github.com/heraldpush/herald/app"
)

// phoneParam is the phone a request names: ?phone=, or ?device= (the word
// the CLI and the local API use). Both at once must agree.
func phoneParam(r *http.Request) (name string, err error) {
	q := r.URL.Query()
	p, d := q.Get("phone"), q.Get("device")
	if q.Has("phone") && q.Has("device") && p != d {
		return "", fmt.Errorf("?phone=%q and ?device=%q name different phones", p, d)
	}
	if q.Has("phone") {
		return p, nil
	}
	return d, nil
}

// phone resolves ?phone= (or ?device=) to a phone. An unknown one is a 404
// with the local API's NotFound code.
func (u *UI) phone(h phoneHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, err := phoneParam(r)
		if err != nil {
			writeCodedError(w, http.StatusBadRequest, app.CodeBadRequest, err.Error())
			return
		}
		d := u.cfg.Phones.Phone(name)
		if d == nil {
			writeCodedError(w, http.StatusNotFound, app.CodeNotFound, u.unknownPhone(name))
			return
		}
		h(w, r, name, d)
	}
}

func (u *UI) unknownPhone(name string) string {
	names := u.cfg.Phones.Names()
	switch {
	case len(names) == 1 && names[0] == "":
		return fmt.Sprintf("no phone %q: this is a single phone; leave out ?phone=", name)
	case len(names) > 0:
		return fmt.Sprintf("no phone %q (phones are %s … %s)", name, names[0], names[len(names)-1])
	}
	return fmt.Sprintf("no phone %q", name)
}

// writeCodedError is an error as the local API writes it ("code",
// "message"), with the page's "error" beside.
func writeCodedError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "message": msg, "error": msg})
}

// initialPage is what the page renders before its first request: the
// phones and the chosen phone's state, so the very first paint shows the
// phone as it is (a screenshot taken right after load shows its tiles).
type initialPage struct {
	Phones []PhoneInfo `json:"phones"`
	Phone  string      `json:"phone"`
	State  State       `json:"state"`
}

// initialMarker is where index.html takes the initial state.
var initialMarker = []byte("<!--initial-state-->")

// handleIndex serves the page with the phone's state inlined.
func (u *UI) handleIndex(w http.ResponseWriter, r *http.Request) {
	page, err := fs.ReadFile(static, "static/index.html")
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	names := u.cfg.Phones.Names()
	init := initialPage{Phones: make([]PhoneInfo, 0, len(names))}
	for _, n := range names {
		init.Phones = append(init.Phones, PhoneInfo{Name: n, Connected: u.cfg.Phones.Phone(n).Link().Connected()})
	}
	// The named phone, else the first (as the page's picker does).
	name, _ := phoneParam(r)
	d := u.cfg.Phones.Phone(name)
	if d == nil && len(names) > 0 {
		name = names[0]
		d = u.cfg.Phones.Phone(name)
	}
	var inline []byte
	// Without a session the page gets only its shell; it then starts a
	// session with the key in its address, or says how to get one.
	if d != nil && hasSession(r) {
		init.Phone = name
		if init.State, err = u.PhoneState(r.Context(), name, d); err == nil {
			// encoding/json escapes <, > and &, so nothing in the state
			// can end the script element.
			if b, err := json.Marshal(init); err == nil {
				inline = append(append([]byte(`<script id="initial-state" type="application/json">`), b...), "</script>"...)
			}
		}
	}
	// Without it the page fetches the state itself, a moment later.
	page = bytes.Replace(page, initialMarker, inline, 1)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(page)
}
