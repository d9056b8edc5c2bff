package daemon

import (
	"fmt"
	"net/http"

	"github.com/heraldpush/herald/app"
)

// The start screen (herald run --ui) acts for every app on the phone, so
// its address carries a key, and the daemon hands that address only to
// its own user and root over the local API socket, whose peer the kernel
// names (`herald ui-url`). Another user of a group-shared socket is
// refused it like any other device-wide change.

// SetStartScreen records the start screen's address, key included, for
// GET /v1/ui; "" means none is served.
func (d *Daemon) SetStartScreen(url string) {
	d.uiMu.Lock()
	defer d.uiMu.Unlock()
	d.uiURL = url
}

func (d *Daemon) startScreen() string {
	d.uiMu.Lock()
	defer d.uiMu.Unlock()
	return d.uiURL
}

func (d *Daemon) handleStartScreen(w http.ResponseWriter, r *http.Request) {
	if uid, ok := PeerUID(r.Context()); ok && !trusted(uid) {
		writeError(w, http.StatusForbidden, app.CodeUnauthorizedAccess,
			fmt.Sprintf("the start screen acts for every app; only root or the daemon's user may have its address, user %d may not", uid))
		return
	}
	u := d.startScreen()
	if u == "" {
		writeError(w, http.StatusNotFound, app.CodeNotFound, "this daemon serves no start screen: start it with --ui ADDR (config key ui, env HERALD_UI)")
		return
	}
	writeJSON(w, http.StatusOK, app.StartScreen{URL: u})
}
