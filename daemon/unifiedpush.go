package daemon

import (
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/storage"
)

// The daemon is a UnifiedPush distributor on D-Bus: a Linux app (KDE's
// NeoChat, Tokodon) registers a token with it and gets a Herald channel's
// URI as its push endpoint; what arrives on that channel reaches the app's
// connector as Message calls. The D-Bus interfaces are UnifiedPush's
// (specifications/dbus.md): they have no signals, only method calls each
// way.
const (
	UnifiedPushBusName = "org.unifiedpush.Distributor.herald"
	unifiedPushPath    = dbus.ObjectPath("/org/unifiedpush/Distributor")
	connectorPath      = dbus.ObjectPath("/org/unifiedpush/Connector")
	distributor1       = "org.unifiedpush.Distributor1"
	distributor2       = "org.unifiedpush.Distributor2"
	connector1         = "org.unifiedpush.Connector1"
	connector2         = "org.unifiedpush.Connector2"

	// UnifiedPushChannel names every UnifiedPush registration's channel.
	UnifiedPushChannel = "unifiedpush"

	// Register's answers and reasons.
	upSucceeded       = "REGISTRATION_SUCCEEDED"
	upFailed          = "REGISTRATION_FAILED"
	upInternalError   = "INTERNAL_ERROR"
	upNetwork         = "NETWORK"
	upUnauthorized    = "UNAUTHORIZED"
	upActionRequired  = "ACTION_REQUIRED"
	errUnauthorizedUP = "org.unifiedpush.Error.Unauthorized"
)

// Bounds on what an app may register: the specification's 100-byte token,
// D-Bus's 255-byte names, and room for a P-256 key in base64url (87
// characters) with some slack.
const (
	MaxUnifiedPushToken       = 100
	maxUnifiedPushDescription = 1024
	maxUnifiedPushVAPID       = 256
	// MaxUnifiedPushBacklog is how many messages one registration keeps
	// waiting for its app; older ones are dropped beyond it, so an app that
	// never answers cannot fill the disk.
	MaxUnifiedPushBacklog = 100
	// upRetry is how long the sender waits before trying apps that did not
	// answer again.
	upRetry = 30 * time.Second
	// upCallTimeout bounds one call to an app's connector.
	upCallTimeout = 30 * time.Second
)

// Unified push bus settings (Config.UnifiedPushBus).
const (
	UnifiedPushOff     = "off"
	UnifiedPushSession = "session"
	UnifiedPushSystem  = "system"
)

// unifiedPush is the distributor: its bus connection and the one goroutine
// that calls apps' connectors with their messages.
type unifiedPush struct {
	d    *Daemon
	conn *dbus.Conn
	kick chan struct{}
	// mu serialises registrations, so two Register calls for one token
	// cannot both pass the takeover check.
	mu sync.Mutex

	// The calls to connectors that follow Register and Unregister run on
	// their own goroutines, started only until run ends.
	goMu   sync.Mutex
	closed bool
	calls  sync.WaitGroup
}

// spawn runs f on a goroutine run waits for.
func (u *unifiedPush) spawn(f func()) {
	u.goMu.Lock()
	defer u.goMu.Unlock()
	if u.closed {
		return
	}
	u.calls.Add(1)
	go func() {
		defer u.calls.Done()
		f()
	}()
}

// upAppID is the Herald app id of a registration: the app's D-Bus name, so
// `herald` lists show whose it is, and a hash of name and token, because
// an app may hold several tokens (one per account) and the daemon keeps one
// channel per app id.
func upAppID(service, token string) string {
	sum := sha256.Sum256([]byte(service + "\x00" + token))
	name := service
	if len(name) > 40 {
		name = name[:40]
	}
	return name + "~" + hex.EncodeToString(sum[:8])
}

// validBusName reports whether s is a well-known D-Bus name (not a unique
// ":1.x" one): dot-separated elements of [A-Za-z0-9_-], not starting with
// a digit, at most 255 bytes.
func validBusName(s string) bool {
	if len(s) == 0 || len(s) > 255 || !strings.Contains(s, ".") {
		return false
	}
	for _, el := range strings.Split(s, ".") {
		if el == "" || (el[0] >= '0' && el[0] <= '9') {
			return false
		}
		for _, r := range el {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return false
			}
		}
	}
	return true
}

// validVAPIDKey reports whether k is an application server key as RFC
// 8292 and the Push API write it: an uncompressed P-256 point (65 bytes) in
// base64url, padded or not.
func validVAPIDKey(k string) bool {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(k, "="))
	if err != nil || len(b) != 65 {
		return false
	}
	_, err = ecdh.P256().NewPublicKey(b)
	return err == nil
}

// dialBus connects to the configured bus; a nil connection with no error
// means there is no session bus to join.
func dialBus(bus string) (*dbus.Conn, error) {
	switch bus {
	case UnifiedPushSession:
		addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
		if addr == "" {
			// The desktop's per-user bus; without one (a server, a
			// container) there is nobody to distribute to. godbus would
			// otherwise try to launch a bus.
			p := fmt.Sprintf("/run/user/%d/bus", os.Getuid())
			if _, err := os.Stat(p); err != nil {
				return nil, nil
			}
			addr = "unix:path=" + p
		}
		return dbus.Connect(addr)
	case UnifiedPushSystem:
		return dbus.ConnectSystemBus()
	default:
		return dbus.Connect(bus)
	}
}

// startUnifiedPush joins the bus, owns the distributor's name and serves
// its object. It returns nil (and logs why) when the distributor is off or
// cannot run: the rest of the daemon does not depend on it.
func (d *Daemon) startUnifiedPush() *unifiedPush {
	bus := d.cfg.UnifiedPushBus
	if bus == "" || bus == UnifiedPushOff {
		return nil
	}
	conn, err := dialBus(bus)
	if err != nil {
		d.log.Warn("UnifiedPush distributor off: cannot join the bus", "bus", bus, "err", err)
		return nil
	}
	if conn == nil {
		d.log.Info("UnifiedPush distributor off: no session bus", "bus", bus)
		return nil
	}
	u := &unifiedPush{d: d, conn: conn, kick: make(chan struct{}, 1)}
	for _, e := range []struct {
		v     any
		iface string
	}{{distributor1Object{u}, distributor1}, {distributor2Object{u}, distributor2},
		{introspect.Introspectable(distributorIntrospection), "org.freedesktop.DBus.Introspectable"}} {
		if err := conn.Export(e.v, unifiedPushPath, e.iface); err != nil {
			conn.Close()
			d.log.Warn("UnifiedPush distributor off", "err", err)
			return nil
		}
	}
	// Queued rather than refused when another process holds the name (a
	// daemon that is still stopping): the bus hands it over when that
	// process leaves.
	reply, err := conn.RequestName(UnifiedPushBusName, 0)
	switch {
	case err != nil:
		conn.Close()
		d.log.Warn("UnifiedPush distributor off: the bus refused the name", "name", UnifiedPushBusName, "bus", bus, "err", err)
		return nil
	case reply == dbus.RequestNameReplyInQueue:
		d.log.Warn("UnifiedPush distributor waiting: another process owns the name; it passes here when that one leaves",
			"name", UnifiedPushBusName, "bus", bus)
	default:
		d.log.Info("UnifiedPush distributor on the bus", "name", UnifiedPushBusName, "bus", bus)
	}
	return u
}

// run announces every registration's endpoint again, then delivers
// messages until ctx ends; it closes the bus connection on the way out.
func (u *unifiedPush) run(ctx context.Context) {
	defer func() {
		u.goMu.Lock()
		u.closed = true
		u.goMu.Unlock()
		u.conn.Close()
		u.calls.Wait()
	}()
	u.announceAll(ctx)
	retry := u.d.cfg.Clock.NewTimer(upRetry)
	defer retry.Stop()
	for {
		if failed := u.deliver(ctx); failed {
			retry.Reset(upRetry)
		}
		select {
		case <-ctx.Done():
			return
		case <-u.kick:
		case <-retry.C():
		}
	}
}

// wake tells the sender there are messages to deliver.
func (u *unifiedPush) wake() {
	select {
	case u.kick <- struct{}{}:
	default:
	}
}

// announceAll calls NewEndpoint for every registration, so apps learn an
// endpoint that changed while the daemon was down.
func (u *unifiedPush) announceAll(ctx context.Context) {
	regs, err := u.d.store.UnifiedPushes(ctx)
	if err != nil {
		u.d.log.Error("UnifiedPush: listing registrations failed", "err", err)
		return
	}
	for _, r := range regs {
		// Open finds the channel, or opens it again if it was closed
		// over the local API: the app is still registered and expects
		// its endpoint to work.
		ch, err := u.d.Open(ctx, r.App, app.OpenRequest{Channel: UnifiedPushChannel, VAPIDKey: r.VAPID})
		if err != nil {
			if ctx.Err() == nil {
				u.d.log.Warn("UnifiedPush: the registration's channel cannot be opened", "service", r.Service, "err", err)
			}
			continue
		}
		u.newEndpoint(ctx, r, ch.URI)
	}
}

// deliver makes one pass over the outbox, oldest first. An app that does
// not take a message keeps it and every later one for the next pass, so
// each app gets its messages in order; the other apps' messages go on.
// It reports whether any failed.
func (u *unifiedPush) deliver(ctx context.Context) (failed bool) {
	down := map[string]bool{}
	regs := map[string]*storage.UnifiedPushRegistration{}
	var after int64
	for ctx.Err() == nil {
		msgs, err := u.d.store.UnifiedPushOutbox(ctx, after, 64)
		if err != nil {
			u.d.log.Error("UnifiedPush: reading the outbox failed", "err", err)
			return true
		}
		if len(msgs) == 0 {
			return failed
		}
		for _, m := range msgs {
			after = m.ID
			if down[m.Token] {
				continue
			}
			reg, ok := regs[m.Token]
			if !ok {
				r, err := u.d.store.UnifiedPush(ctx, m.Token)
				if errors.Is(err, storage.ErrNotFound) {
					_ = u.d.store.AckUnifiedPush(ctx, m.ID, "") // unregistered meanwhile
					continue
				}
				if err != nil {
					down[m.Token], failed = true, true
					continue
				}
				reg = &r
				regs[m.Token] = reg
			}
			if err := u.message(ctx, *reg, m); err != nil {
				if ctx.Err() == nil {
					u.d.log.Warn("UnifiedPush: message not taken; will retry", "service", reg.Service, "err", err)
				}
				down[m.Token], failed = true, true
				continue
			}
			if err := u.d.store.AckUnifiedPush(ctx, m.ID, CountUnifiedPushDelivered); err != nil {
				u.d.log.Error("UnifiedPush: recording the ack failed", "err", err)
				return true
			}
		}
	}
	return failed
}

// errWrongUser is an app's bus name held by a process of another Unix
// user than the registration's: a user whose app left the bus does not
// hand its messages, endpoint or channel to whoever takes the name next.
var errWrongUser = errors.New("the app's bus name is held by another user")

// connector returns the app's connector object, addressed by the unique
// name of the connection that holds r.Service now, once the bus has said
// that connection runs as the registration's user. Calling the unique name
// rather than the well-known one closes the gap between the check and the
// call: the name may change hands, a unique name never does.
func (u *unifiedPush) connector(ctx context.Context, r storage.UnifiedPushRegistration) (dbus.BusObject, error) {
	bus := u.conn.BusObject()
	var holder string
	if err := bus.CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, r.Service).Store(&holder); err != nil {
		// An app the bus can start (a D-Bus service file) is started, as
		// a call to its name would have started it; its process is then
		// checked like any other.
		var started uint32
		if serr := bus.CallWithContext(ctx, "org.freedesktop.DBus.StartServiceByName", 0, r.Service, uint32(0)).Store(&started); serr != nil {
			return nil, fmt.Errorf("%s is not on the bus: %w", r.Service, err)
		}
		if err := bus.CallWithContext(ctx, "org.freedesktop.DBus.GetNameOwner", 0, r.Service).Store(&holder); err != nil {
			return nil, fmt.Errorf("%s is not on the bus: %w", r.Service, err)
		}
	}
	if err := u.sameUser(ctx, dbus.Sender(holder), r); err != nil {
		u.d.log.Warn("UnifiedPush: call withheld", "service", r.Service, "app", r.App, "holder", holder, "err", err)
		if cerr := u.d.store.AddCount(ctx, CountUnifiedPushWrongUser, 1); cerr != nil {
			u.d.log.Error("UnifiedPush: counting failed", "err", cerr)
		}
		return nil, err
	}
	return u.conn.Object(holder, connectorPath), nil
}

// sameUser checks that the connection conn runs as the Unix user that owns
// r's app id (or as a user trusted with every app, as on the local API).
// Where the bus cannot tell, it refuses.
func (u *unifiedPush) sameUser(ctx context.Context, conn dbus.Sender, r storage.UnifiedPushRegistration) error {
	uid, err := u.unixUser(conn)
	if err != nil {
		return fmt.Errorf("%w: the bus does not say who %s is: %w", errWrongUser, conn, err)
	}
	owner, err := u.d.store.AppOwner(ctx, r.App)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// Every registration binds its app id; one without an owner is
		// from no version that delivered, so nobody is vouched for.
		return fmt.Errorf("%w: app id %s has no owner; the app must register again", errWrongUser, r.App)
	case err != nil:
		return err
	case owner != uid && !trusted(uid):
		return fmt.Errorf("%w: %s runs as user %d, app id %s belongs to user %d", errWrongUser, conn, uid, r.App, owner)
	}
	return nil
}

// message calls the app's Message. A Connector2 reply is the app's ack; a
// Connector1 call has no reply, so it counts as taken once sent.
func (u *unifiedPush) message(ctx context.Context, r storage.UnifiedPushRegistration, m storage.UnifiedPushMessage) error {
	cctx, cancel := context.WithTimeout(ctx, upCallTimeout)
	defer cancel()
	obj, err := u.connector(cctx, r)
	if err != nil {
		return err
	}
	if r.Version == 2 {
		var out map[string]dbus.Variant
		return obj.CallWithContext(cctx, connector2+".Message", 0, map[string]dbus.Variant{
			"token": dbus.MakeVariant(r.Token), "message": dbus.MakeVariant(m.Body), "id": dbus.MakeVariant(m.MessageID),
		}).Store(&out)
	}
	return obj.CallWithContext(cctx, connector1+".Message", dbus.FlagNoReplyExpected, r.Token, m.Body, m.MessageID).Err
}

func (u *unifiedPush) newEndpoint(ctx context.Context, r storage.UnifiedPushRegistration, endpoint string) {
	cctx, cancel := context.WithTimeout(ctx, upCallTimeout)
	defer cancel()
	obj, err := u.connector(cctx, r)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, errWrongUser) {
			u.d.log.Warn("UnifiedPush: NewEndpoint not sent", "service", r.Service, "err", err)
		}
		return
	}
	if r.Version == 2 {
		err = obj.CallWithContext(cctx, connector2+".NewEndpoint", 0, map[string]dbus.Variant{
			"token": dbus.MakeVariant(r.Token), "endpoint": dbus.MakeVariant(endpoint)}).Err
	} else {
		err = obj.CallWithContext(cctx, connector1+".NewEndpoint", dbus.FlagNoReplyExpected, r.Token, endpoint).Err
	}
	if err != nil && ctx.Err() == nil {
		u.d.log.Warn("UnifiedPush: NewEndpoint failed", "service", r.Service, "err", err)
	}
}

func (u *unifiedPush) unregistered(ctx context.Context, r storage.UnifiedPushRegistration) {
	cctx, cancel := context.WithTimeout(ctx, upCallTimeout)
	defer cancel()
	obj, err := u.connector(cctx, r)
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, errWrongUser) {
			u.d.log.Warn("UnifiedPush: Unregistered not sent", "service", r.Service, "err", err)
		}
		return
	}
	if r.Version == 2 {
		err = obj.CallWithContext(cctx, connector2+".Unregistered", 0, map[string]dbus.Variant{"token": dbus.MakeVariant(r.Token)}).Err
	} else {
		err = obj.CallWithContext(cctx, connector1+".Unregistered", dbus.FlagNoReplyExpected, r.Token).Err
	}
	if err != nil && ctx.Err() == nil {
		u.d.log.Warn("UnifiedPush: Unregistered failed", "service", r.Service, "err", err)
	}
}

// owns reports whether the caller with unique name sender owns service on
// the bus: an app registers only for itself.
func (u *unifiedPush) owns(sender dbus.Sender, service string) bool {
	var owner string
	if err := u.conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, service).Store(&owner); err != nil {
		return false
	}
	return owner == string(sender)
}

// unixUser is the Unix user of the connection sender, as the bus knows it.
func (u *unifiedPush) unixUser(sender dbus.Sender) (uint32, error) {
	if f := u.d.cfg.UnifiedPushPeerUID; f != nil {
		return f(u.conn, string(sender))
	}
	var uid uint32
	err := u.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, string(sender)).Store(&uid)
	return uid, err
}

// regError is a refused registration: the reason Register answers.
type regError struct {
	reason string
	err    error
}

func (e *regError) Error() string { return e.reason + ": " + e.err.Error() }

// register opens (or finds) the channel of service's token and stores the
// registration. The caller then announces the endpoint.
func (u *unifiedPush) register(sender dbus.Sender, version int, service, token, description, vapid string) (storage.UnifiedPushRegistration, string, error) {
	bad := func(reason, format string, a ...any) (storage.UnifiedPushRegistration, string, error) {
		err := &regError{reason, fmt.Errorf(format, a...)}
		u.d.log.Warn("UnifiedPush: registration refused", "service", service, "sender", string(sender), "err", err)
		return storage.UnifiedPushRegistration{}, "", err
	}
	switch {
	case !validBusName(service):
		return bad(upInternalError, "service %q is not a D-Bus name", service)
	case token == "" || len(token) > MaxUnifiedPushToken:
		return bad(upInternalError, "token must be 1-%d bytes", MaxUnifiedPushToken)
	case len(description) > maxUnifiedPushDescription:
		return bad(upInternalError, "description longer than %d bytes", maxUnifiedPushDescription)
	case len(vapid) > maxUnifiedPushVAPID:
		return bad(upInternalError, "vapid key longer than %d bytes", maxUnifiedPushVAPID)
	case vapid != "" && !validVAPIDKey(vapid):
		return bad(upInternalError, "vapid is not a P-256 public key in uncompressed form, base64url-encoded")
	case !u.owns(sender, service):
		return bad(upUnauthorized, "caller %s does not own %s", sender, service)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	ctx := u.d.ctx
	old, err := u.d.store.UnifiedPush(ctx, token)
	switch {
	case err == nil && old.Service != service:
		return bad(upUnauthorized, "token belongs to another app")
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return bad(upInternalError, "%w", err)
	}
	r := storage.UnifiedPushRegistration{Token: token, Service: service, App: upAppID(service, token),
		Description: description, VAPID: vapid, Version: version, CreatedAt: u.d.cfg.Clock.Now()}
	if err == nil {
		r.CreatedAt = old.CreatedAt
	}
	// The app id belongs to the caller's Unix user, as one opened over
	// the local API does (peer.go), so that no other user of a shared
	// socket can close or rebind the channel behind the app's back.
	uid, err := u.unixUser(sender)
	if err != nil {
		return bad(upInternalError, "the bus does not say who the caller is: %w", err)
	}
	owner, err := u.d.store.ClaimApp(ctx, r.App, uid, u.d.cfg.Clock.Now())
	switch {
	case err != nil:
		return bad(upInternalError, "%w", err)
	case owner != uid && !trusted(uid):
		return bad(upUnauthorized, "app id %s belongs to user %d, the caller is user %d", r.App, owner, uid)
	}
	ch, err := u.d.Open(ctx, r.App, app.OpenRequest{Channel: UnifiedPushChannel, VAPIDKey: vapid})
	switch {
	case errors.Is(err, ErrQuotaExceeded):
		return bad(upActionRequired, "%w", err)
	case errors.Is(err, ErrOpenFailed):
		return bad(upNetwork, "%w", err)
	case err != nil:
		return bad(upInternalError, "%w", err)
	}
	if err := u.d.store.SaveUnifiedPush(ctx, r); err != nil {
		return bad(upInternalError, "%w", err)
	}
	u.d.log.Info("UnifiedPush: registered", "service", service, "app", r.App, "version", version)
	return r, ch.URI, nil
}

// announceLater calls NewEndpoint once Register has answered: the
// specification wants it after every successful Register, and an app
// waiting in Register could not take the call before.
func (u *unifiedPush) announceLater(r storage.UnifiedPushRegistration, endpoint string) {
	u.spawn(func() { u.newEndpoint(u.d.ctx, r, endpoint) })
}

// unregister closes token's channel and forgets it, if sender owns the
// app it belongs to, then tells the app.
func (u *unifiedPush) unregister(sender dbus.Sender, token string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	ctx := u.d.ctx
	r, err := u.d.store.UnifiedPush(ctx, token)
	if errors.Is(err, storage.ErrNotFound) {
		return nil // nothing to do; the app's view is already right
	}
	if err != nil {
		return err
	}
	if !u.owns(sender, r.Service) {
		u.d.log.Warn("UnifiedPush: unregister refused", "service", r.Service, "sender", string(sender))
		return &regError{upUnauthorized, fmt.Errorf("caller %s does not own %s", sender, r.Service)}
	}
	// Owning the name is not enough: another user's process may have
	// taken it after the app left the bus.
	if err := u.sameUser(ctx, sender, r); err != nil {
		u.d.log.Warn("UnifiedPush: unregister refused", "service", r.Service, "sender", string(sender), "err", err)
		if cerr := u.d.store.AddCount(ctx, CountUnifiedPushWrongUser, 1); cerr != nil {
			u.d.log.Error("UnifiedPush: counting failed", "err", cerr)
		}
		if errors.Is(err, errWrongUser) {
			return &regError{upUnauthorized, err}
		}
		return err
	}
	if err := u.d.CloseChannel(ctx, r.App); err != nil && !errors.Is(err, ErrNotOpened) {
		return err
	}
	if err := u.d.store.DeleteUnifiedPush(ctx, token); err != nil {
		return err
	}
	u.d.log.Info("UnifiedPush: unregistered", "service", r.Service, "app", r.App)
	u.spawn(func() { u.unregistered(u.d.ctx, r) })
	return nil
}

// uriChanged tells a registration's app its endpoint moved.
func (u *unifiedPush) uriChanged(ctx context.Context, appID, uri string) {
	regs, err := u.d.store.UnifiedPushes(ctx)
	if err != nil {
		return
	}
	for _, r := range regs {
		if r.App == appID {
			u.announceLater(r, uri)
		}
	}
}

// distributor1Object is org.unifiedpush.Distributor1.
type distributor1Object struct{ u *unifiedPush }

func (o distributor1Object) Register(sender dbus.Sender, service, token, description string) (string, string, *dbus.Error) {
	r, uri, err := o.u.register(sender, 1, service, token, description, "")
	if err != nil {
		return upFailed, reasonOf(err), nil
	}
	o.u.announceLater(r, uri)
	return upSucceeded, "", nil
}

func (o distributor1Object) Unregister(sender dbus.Sender, token string) *dbus.Error {
	if err := o.u.unregister(sender, token); err != nil {
		return dbusError(err)
	}
	return nil
}

// distributor2Object is org.unifiedpush.Distributor2: the same calls with
// dictionaries, and a VAPID key.
type distributor2Object struct{ u *unifiedPush }

func (o distributor2Object) Register(sender dbus.Sender, args map[string]dbus.Variant) (map[string]dbus.Variant, *dbus.Error) {
	str := func(k string) string { s, _ := args[k].Value().(string); return s }
	r, uri, err := o.u.register(sender, 2, str("service"), str("token"), str("description"), str("vapid"))
	if err != nil {
		return map[string]dbus.Variant{"success": dbus.MakeVariant(upFailed), "reason": dbus.MakeVariant(reasonOf(err))}, nil
	}
	o.u.announceLater(r, uri)
	return map[string]dbus.Variant{"success": dbus.MakeVariant(upSucceeded)}, nil
}

func (o distributor2Object) Unregister(sender dbus.Sender, args map[string]dbus.Variant) (map[string]dbus.Variant, *dbus.Error) {
	token, _ := args["token"].Value().(string)
	if err := o.u.unregister(sender, token); err != nil {
		return nil, dbusError(err)
	}
	return map[string]dbus.Variant{}, nil
}

func reasonOf(err error) string {
	var re *regError
	if errors.As(err, &re) {
		return re.reason
	}
	return upInternalError
}

func dbusError(err error) *dbus.Error {
	var re *regError
	if errors.As(err, &re) && re.reason == upUnauthorized {
		return dbus.NewError(errUnauthorizedUP, []any{err.Error()})
	}
	return dbus.MakeFailedError(err)
}

// upMessageID is the id a message carries to the app: the sender's
// X-MessageID when it gave one, else the notification's sequence number,
// which is unique on the device.
func upMessageID(messageID string, seq uint64) string {
	if messageID != "" {
		return messageID
	}
	return strconv.FormatUint(seq, 10)
}

// distributorIntrospection lists both distributor interfaces: KUnifiedPush
// speaks v2 only to a distributor whose Introspect shows Distributor2.
const distributorIntrospection = `<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="org.unifiedpush.Distributor1">
    <method name="Register">
      <arg name="serviceName" type="s" direction="in"/>
      <arg name="token" type="s" direction="in"/>
      <arg name="description" type="s" direction="in"/>
      <arg name="registrationResult" type="s" direction="out"/>
      <arg name="registrationResultReason" type="s" direction="out"/>
    </method>
    <method name="Unregister">
      <arg name="token" type="s" direction="in"/>
      <annotation name="org.freedesktop.DBus.Method.NoReply" value="true"/>
    </method>
  </interface>
  <interface name="org.unifiedpush.Distributor2">
    <method name="Register">
      <arg name="args" type="a{sv}" direction="in"/>
      <arg name="result" type="a{sv}" direction="out"/>
    </method>
    <method name="Unregister">
      <arg name="args" type="a{sv}" direction="in"/>
      <arg name="result" type="a{sv}" direction="out"/>
    </method>
  </interface>` + introspect.IntrospectDataString + `</node>`
