package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/storage"
	"github.com/heraldpush/herald/wire"
)

// Apps are told apart by the Unix user of the process at the other end of
// the socket, as the kernel reports it (SO_PEERCRED on Linux,
// LOCAL_PEERCRED on macOS and FreeBSD): the first user to open an app id
// (or run its event stream) owns it, and other users are refused it. Root
// and the daemon's own user are trusted with every app (they can read the
// database anyway). On a phone the OS vouched for the app; here the kernel
// vouches for the user, which is what a group-shared socket can tell apart.

// PeerCred returns the Unix user at the other end of a local API
// connection.
type PeerCred func(net.Conn) (uid uint32, err error)

// ErrNoPeerCred is returned by SocketPeerUID where the OS does not tell a
// socket's peer (Windows): there the socket's permissions are the only
// access control, as they were before owners existed.
var ErrNoPeerCred = errors.New("daemon: the OS does not report the socket peer's user")

type peerKey struct{}

type peer struct {
	uid uint32
	err error
}

// ConnContext records the user of each accepted local API connection in
// its requests' context, for http.Server.ConnContext. cred nil means
// SocketPeerUID.
func ConnContext(cred PeerCred) func(context.Context, net.Conn) context.Context {
	if cred == nil {
		cred = SocketPeerUID
	}
	return func(ctx context.Context, c net.Conn) context.Context {
		uid, err := cred(c)
		return context.WithValue(ctx, peerKey{}, peer{uid: uid, err: err})
	}
}

// PeerUID returns the user of the connection a request came on, if the
// daemon knows it.
func PeerUID(ctx context.Context) (uint32, bool) {
	p, ok := ctx.Value(peerKey{}).(peer)
	return p.uid, ok && p.err == nil
}

// trusted reports whether uid may act for every app.
func trusted(uid uint32) bool {
	return uid == 0 || uid == uint32(os.Geteuid())
}

// listPaths are the device-wide lists a user sees only their own apps in.
var listPaths = map[string]bool{app.APIVersion + "/channels": true, app.APIVersion + "/tiles": true, app.APIVersion + "/toasts": true}

// appPath returns the app id of a /v1/apps/{app}/... path and what follows
// it, decoded as the mux decodes path values.
func appPath(r *http.Request) (appID, rest string, ok bool) {
	p, found := strings.CutPrefix(r.URL.EscapedPath(), app.APIVersion+"/apps/")
	if !found {
		return "", "", false
	}
	seg, rest, _ := strings.Cut(p, "/")
	appID, err := url.PathUnescape(seg)
	if err != nil {
		return "", "", false
	}
	return appID, rest, true
}

// guardPeer enforces app ownership on the local API.
func (d *Daemon) guardPeer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := r.Context().Value(peerKey{}).(peer)
		if !ok || errors.Is(p.err, ErrNoPeerCred) {
			// Not served over a socket that names its peer (in-process
			// use, or an OS without peer credentials).
			next.ServeHTTP(w, r)
			return
		}
		if p.err != nil {
			d.log.Warn("local API: cannot tell the caller's user", "err", p.err)
			writeError(w, http.StatusForbidden, app.CodeUnauthorizedAccess, "cannot tell which user is calling: "+p.err.Error())
			return
		}
		appID, rest, scoped := appPath(r)
		if !scoped {
			d.guardDevice(w, r, p.uid, next)
			return
		}
		if !wire.ValidName(appID) {
			next.ServeHTTP(w, r) // the handler answers 400
			return
		}
		owner, err := d.store.AppOwner(r.Context(), appID)
		if errors.Is(err, storage.ErrNotFound) && d.claims(r, appID, rest) {
			owner, err = d.store.ClaimApp(r.Context(), appID, p.uid, d.cfg.Clock.Now())
			if err == nil && owner == p.uid {
				d.log.Info("app id bound to its user", "app", appID, "uid", owner)
			}
		}
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			fail(w, err)
			return
		case owner != p.uid && !trusted(p.uid):
			writeError(w, http.StatusForbidden, app.CodeUnauthorizedAccess,
				fmt.Sprintf("app %s belongs to user %d; user %d may not act for it", appID, owner, p.uid))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// claims reports whether a request for an app without an owner makes its
// caller the owner: opening the channel or running the event stream does,
// and so does any request for a channel opened before owners were kept.
func (d *Daemon) claims(r *http.Request, appID, rest string) bool {
	if (r.Method == http.MethodPost && rest == "channel") || rest == "events" {
		return true
	}
	_, err := d.store.Channel(r.Context(), appID)
	return err == nil
}

// guardDevice handles the device-wide paths: only trusted users change
// device-wide settings (the power level), and other users' lists hold
// only their own apps.
func (d *Daemon) guardDevice(w http.ResponseWriter, r *http.Request, uid uint32, next http.Handler) {
	if trusted(uid) {
		next.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusForbidden, app.CodeUnauthorizedAccess,
			fmt.Sprintf("only root or the daemon's user may change device settings; user %d may not", uid))
		return
	}
	filter := onlyOwned
	switch {
	case listPaths[r.URL.Path]:
	case r.URL.Path == app.APIVersion+"/status":
		filter = onlyOwnedRunning
	default:
		next.ServeHTTP(w, r)
		return
	}
	owners, err := d.store.AppOwners(r.Context())
	if err != nil {
		fail(w, err)
		return
	}
	rec := &bufferedWriter{header: http.Header{}, status: http.StatusOK}
	next.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	if rec.status == http.StatusOK {
		if body, err = filter(body, owners, uid); err != nil {
			fail(w, err)
			return
		}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	w.Write(body)
}

// onlyOwned keeps the items of a JSON array whose "app" uid owns.
func onlyOwned(body []byte, owners map[string]uint32, uid uint32) ([]byte, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("filtering a list: %w", err)
	}
	kept := make([]json.RawMessage, 0, len(items))
	for _, it := range items {
		var a struct {
			App string `json:"app"`
		}
		if err := json.Unmarshal(it, &a); err != nil {
			return nil, fmt.Errorf("filtering a list: %w", err)
		}
		if owner, ok := owners[a.App]; ok && owner == uid {
			kept = append(kept, it)
		}
	}
	out, err := json.Marshal(kept)
	return append(out, '\n'), err
}

// onlyOwnedRunning keeps, of the status's running apps, those uid owns;
// the rest of the status is the device's (link, power, counts).
func onlyOwnedRunning(body []byte, owners map[string]uint32, uid uint32) ([]byte, error) {
	var st map[string]json.RawMessage
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("filtering the status: %w", err)
	}
	var running []string
	if raw, ok := st["running_apps"]; ok {
		if err := json.Unmarshal(raw, &running); err != nil {
			return nil, fmt.Errorf("filtering the status: %w", err)
		}
	}
	kept := []string{}
	for _, a := range running {
		if owner, ok := owners[a]; ok && owner == uid {
			kept = append(kept, a)
		}
	}
	st["running_apps"], _ = json.Marshal(kept)
	out, err := json.Marshal(st)
	return append(out, '\n'), err
}

// bufferedWriter holds a list's answer so it can be filtered.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header         { return b.header }
func (b *bufferedWriter) WriteHeader(status int)      { b.status = status }
func (b *bufferedWriter) Write(p []byte) (int, error) { return b.body.Write(p) }

// withOwners fills in each channel's owner.
func (d *Daemon) withOwners(ctx context.Context, chans []app.Channel) error {
	owners, err := d.store.AppOwners(ctx)
	if err != nil {
		return err
	}
	for i := range chans {
		if uid, ok := owners[chans[i].App]; ok {
			chans[i].OwnerUID = &uid
		}
	}
	return nil
}

// peerUIDFrom runs uid, the OS's query for a socket peer's user, on the
// file descriptor of c, a Unix socket connection.
func peerUIDFrom(c net.Conn, uid func(fd int) (uint32, error)) (uint32, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, fmt.Errorf("daemon: peer credentials: %T is not a Unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("daemon: peer credentials: %w", err)
	}
	var id uint32
	var uerr error
	if err := raw.Control(func(fd uintptr) { id, uerr = uid(int(fd)) }); err != nil {
		return 0, fmt.Errorf("daemon: peer credentials: %w", err)
	}
	if uerr != nil {
		return 0, fmt.Errorf("daemon: peer credentials: %w", uerr)
	}
	return id, nil
}
