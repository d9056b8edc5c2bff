package platform

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/godbus/dbus/v5"
)

// The freedesktop.org Desktop Notifications interface.
const (
	notifyName      = "org.freedesktop.Notifications"
	notifyPath      = dbus.ObjectPath("/org/freedesktop/Notifications")
	notifyMethod    = notifyName + ".Notify"
	notifyExpireMS  = int32(10000)
	urgencyLow      = byte(0)
	urgencyNormal   = byte(1)
	paramHint       = "x-herald-param"
	dbusDisplayName = "dbus"
)

var errNoNotificationServer = errors.New("no notification server owns " + notifyName + " on the session bus")

// dbusDisplay shows toasts through the desktop's notification server. It
// keeps one connection and dials again after the bus drops it.
type dbusDisplay struct {
	addr string
	mu   sync.Mutex
	conn *dbus.Conn
}

func newDBusDisplay(addr string) (*dbusDisplay, error) {
	if addr == "" {
		return nil, fmt.Errorf("%w: dbus: DBUS_SESSION_BUS_ADDRESS is not set", ErrDisplayUnavailable)
	}
	d := &dbusDisplay{addr: addr}
	if _, err := d.connection(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDisplayUnavailable, err)
	}
	return d, nil
}

func (d *dbusDisplay) Name() string { return dbusDisplayName }

func (d *dbusDisplay) connection() (*dbus.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn != nil && d.conn.Connected() {
		return d.conn, nil
	}
	conn, err := dbus.Connect(d.addr)
	if err != nil {
		return nil, fmt.Errorf("dbus: connect to session bus: %w", err)
	}
	d.conn = conn
	return conn, nil
}

// serverPresent reports whether a notification server owns the well-known
// name (a bus can be running without a desktop).
func (d *dbusDisplay) serverPresent() (bool, error) {
	conn, err := d.connection()
	if err != nil {
		return false, err
	}
	var owned bool
	if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, notifyName).Store(&owned); err != nil {
		return false, fmt.Errorf("dbus: NameHasOwner: %w", err)
	}
	return owned, nil
}

// Show calls Notify(app_name, replaces_id, app_icon, summary, body, actions,
// hints, expire_timeout).
func (d *dbusDisplay) Show(ctx context.Context, t Toast) error {
	ctx, cancel := withShowTimeout(ctx)
	defer cancel()
	conn, err := d.connection()
	if err != nil {
		return err
	}
	hints := map[string]dbus.Variant{"urgency": dbus.MakeVariant(urgencyNormal)}
	if t.Silent {
		hints["urgency"] = dbus.MakeVariant(urgencyLow)
		hints["suppress-sound"] = dbus.MakeVariant(true)
	} else if filepath.IsAbs(t.Sound) {
		hints["sound-file"] = dbus.MakeVariant(t.Sound)
	}
	if t.Param != "" {
		hints[paramHint] = dbus.MakeVariant(t.Param)
	}
	var id uint32
	err = conn.Object(notifyName, notifyPath).CallWithContext(ctx, notifyMethod, 0,
		toastTitle(t), uint32(0), "", t.Text1, t.Text2, []string{}, hints, notifyExpireMS,
	).Store(&id)
	if err != nil {
		return fmt.Errorf("dbus: Notify: %w", err)
	}
	return nil
}

// Close closes the bus connection.
func (d *dbusDisplay) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil {
		return nil
	}
	err := d.conn.Close()
	d.conn = nil
	return err
}
