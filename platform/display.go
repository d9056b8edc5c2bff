package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"
)

// Toast is a toast notification as the shell shows it.
type Toast struct {
	App    string // the app it is for; shown as "Herald: <app>"
	Text1  string // the bold title
	Text2  string // the body
	Param  string // where the app navigates when the toast is tapped
	Sound  string // the sound to play; "" = the default sound
	Silent bool   // no sound at all
}

// Display shows toasts. Backends that hold a connection also implement
// io.Closer.
type Display interface {
	Show(ctx context.Context, t Toast) error
	Name() string
}

var (
	// ErrUnknownDisplay is returned by NewDisplay for a name it does not know.
	ErrUnknownDisplay = errors.New("unknown display backend")
	// ErrDisplayUnavailable is returned by NewDisplay for a backend that
	// cannot work here (another OS, no session bus).
	ErrDisplayUnavailable = errors.New("display backend unavailable")
)

// NewDisplay returns the toast display backend called name:
//
//   - "log" writes each toast as a log line; it always works.
//   - "dbus" calls org.freedesktop.Notifications.Notify on the session bus
//     (DBUS_SESSION_BUS_ADDRESS), which every Linux desktop implements.
//   - "macos" runs osascript's "display notification" (macOS only).
//   - "windows" shows a Windows toast through PowerShell (Windows only).
//   - "auto" (or "") picks macos on macOS and windows on Windows; elsewhere
//     dbus when DBUS_SESSION_BUS_ADDRESS is set and a notification server
//     owns org.freedesktop.Notifications, and log otherwise (for example
//     for a system service, which has no session bus).
//
// log is used by the log backend and for the choice "auto" makes; nil means
// slog.Default().
func NewDisplay(name string, log *slog.Logger) (Display, error) {
	if log == nil {
		log = slog.Default()
	}
	switch name {
	case "log":
		return logDisplay{log: log}, nil
	case "dbus":
		return newDBusDisplay(os.Getenv("DBUS_SESSION_BUS_ADDRESS"))
	case "macos":
		return newMacOSDisplay()
	case "windows":
		return newWindowsDisplay()
	case "auto", "":
		d := autoDisplay(log)
		log.Debug("toast display chosen", "display", d.Name())
		return d, nil
	}
	return nil, fmt.Errorf("%w %q: want one of %s", ErrUnknownDisplay, name, strings.Join(DisplayNames, ", "))
}

func autoDisplay(log *slog.Logger) Display {
	var (
		d   Display
		err error
	)
	switch runtime.GOOS {
	case "darwin":
		d, err = newMacOSDisplay()
	case "windows":
		d, err = newWindowsDisplay()
	default:
		addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
		if addr == "" {
			return logDisplay{log: log}
		}
		var dd *dbusDisplay
		dd, err = newDBusDisplay(addr)
		if err == nil {
			var ok bool
			ok, err = dd.serverPresent()
			if err == nil && !ok {
				err = errNoNotificationServer
			}
			if err != nil {
				_ = dd.Close()
			}
		}
		d = dd
	}
	if err != nil {
		log.Info("toasts go to the log", "reason", err)
		return logDisplay{log: log}
	}
	return d
}

// logDisplay writes toasts to the log: the backend for headless machines
// and system services.
type logDisplay struct{ log *slog.Logger }

func (logDisplay) Name() string { return "log" }

func (d logDisplay) Show(ctx context.Context, t Toast) error {
	d.log.LogAttrs(ctx, slog.LevelInfo, "toast",
		slog.String("app", t.App),
		slog.String("text1", t.Text1),
		slog.String("text2", t.Text2),
		slog.String("param", t.Param),
		slog.String("sound", t.Sound),
		slog.Bool("silent", t.Silent),
	)
	return nil
}

func toastTitle(t Toast) string { return "Herald: " + t.App }

// showTimeout bounds a Show whose context has no deadline, so a hung
// notification server or helper process cannot stall toast delivery.
const showTimeout = 10 * time.Second

func withShowTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, showTimeout)
}
