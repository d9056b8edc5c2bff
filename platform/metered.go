package platform

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/heraldpush/herald/internal/netroute"
)

// How a network was found metered (or not), as Metered reports it.
const (
	MeteredByNetworkManager = "networkmanager"
	MeteredByInterface      = "interface"
)

// NetworkManager's NMMetered values (its D-Bus API).
const (
	nmMeteredUnknown  = 0
	nmMeteredYes      = 1
	nmMeteredNo       = 2
	nmMeteredGuessYes = 3
	nmMeteredGuessNo  = 4
)

// NetworkCost tells a metered or cellular network from others, so that the
// heartbeat keeps a lower ceiling where a failed probe (a reconnect) costs
// most. On Linux it asks NetworkManager on the system bus for its Metered
// property (that of the primary connection's device: set by the user, or
// guessed from a cellular modem or a phone's hotspot); where NetworkManager
// does not run or does not know, it looks at the default route's interface
// (Route, default /proc/net/route): a WWAN device (DEVTYPE=wwan in its
// uevent under Net, default /sys/class/net) or a modem's usual name
// (wwan*, ww*, rmnet*, ccmni*) is cellular. Elsewhere nothing is detected.
type NetworkCost struct {
	// SystemBus is the system bus's D-Bus address; "" uses
	// DBUS_SYSTEM_BUS_ADDRESS or the standard socket.
	SystemBus  string
	Route, Net string
}

// Metered reports whether the device's network is metered or cellular,
// and what told (MeteredByNetworkManager, MeteredByInterface, or "" when
// nothing could, which counts as not metered). It fails soft: a bus that
// cannot be reached or a table that cannot be read only means less is
// known.
func (n NetworkCost) Metered(ctx context.Context) (bool, string) {
	if runtime.GOOS != "linux" && n.SystemBus == "" && n.Route == "" {
		return false, ""
	}
	if v, ok := n.networkManager(ctx); ok {
		switch v {
		case nmMeteredYes, nmMeteredGuessYes:
			return true, MeteredByNetworkManager
		case nmMeteredNo, nmMeteredGuessNo:
			return false, MeteredByNetworkManager
		}
	}
	route, sys := n.Route, n.Net
	if route == "" {
		route = "/proc/net/route"
	}
	if sys == "" {
		sys = "/sys/class/net"
	}
	iface, _, err := netroute.Default(route)
	if err != nil || iface == "" || strings.ContainsAny(iface, "/\\") || iface == "." || iface == ".." {
		return false, ""
	}
	uevent, _ := os.ReadFile(filepath.Join(sys, iface, "uevent"))
	if cellular(iface, uevent) {
		return true, MeteredByInterface
	}
	return false, MeteredByInterface
}

// networkManager reads NetworkManager's Metered property; ok is false when
// it cannot be read. It never starts NetworkManager (no auto-start) and
// gives up after 2 s: it runs before every connection attempt.
func (n NetworkCost) networkManager(ctx context.Context) (uint32, bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var conn *dbus.Conn
	var err error
	if n.SystemBus != "" {
		conn, err = dbus.Connect(n.SystemBus, dbus.WithContext(ctx))
	} else {
		conn, err = dbus.ConnectSystemBus(dbus.WithContext(ctx))
	}
	if err != nil {
		return 0, false
	}
	defer conn.Close()
	var v dbus.Variant
	err = conn.Object("org.freedesktop.NetworkManager", "/org/freedesktop/NetworkManager").
		CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", dbus.FlagNoAutoStart, "org.freedesktop.NetworkManager", "Metered").Store(&v)
	if err != nil {
		return 0, false
	}
	m, ok := v.Value().(uint32)
	if !ok || m == nmMeteredUnknown {
		return 0, false
	}
	return m, true
}

// cellular reports whether an interface is a cellular modem: by the
// DEVTYPE its uevent declares, or by the names modem drivers give.
func cellular(iface string, uevent []byte) bool {
	if ueventDevtype(uevent) == "wwan" {
		return true
	}
	for _, prefix := range []string{"wwan", "ww", "rmnet", "ccmni"} {
		if strings.HasPrefix(iface, prefix) {
			return true
		}
	}
	return false
}

// ueventDevtype returns the DEVTYPE of a sysfs uevent file (KEY=value
// lines), or "".
func ueventDevtype(uevent []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(uevent))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k == "DEVTYPE" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
