package platform

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/heraldpush/herald/internal/netroute"
)

// What the device runs on decides the least urgent Web Push message it
// takes (mpns.MinUrgency). Where it cannot be read, the answer is yes (on
// power, on Wi-Fi): nothing is then held that the device could take, and
// a low battery still lowers it through the power level.

// OnPower reports whether the device runs on external power: a mains or
// USB supply online, a system battery charging, full or not charging, or
// no system battery at all. Read from sysfs under Root on Linux; other
// systems answer true.
func (p PowerSource) OnPower() bool {
	if p.Root == "" && runtime.GOOS != "linux" {
		return true
	}
	root := p.Root
	if root == "" {
		root = DefaultPowerSupplyRoot
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return true
	}
	battery := false
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		read := func(name string) string {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			return strings.TrimSpace(string(b))
		}
		switch read("type") {
		case "Mains", "USB", "USB_C", "USB_PD", "USB_PD_DRP", "Wireless":
			if read("online") == "1" {
				return true
			}
		case "Battery":
			if read("scope") == "Device" || read("present") == "0" {
				continue
			}
			battery = true
			switch read("status") {
			case "Charging", "Full", "Not charging":
				return true
			}
		}
	}
	return !battery
}

// Network is where the device learns whether it is on Wi-Fi: on Linux the
// interface of the default route (Route, default /proc/net/route) is
// wireless when it has a wireless or phy80211 entry under Net (default
// /sys/class/net).
type Network struct{ Route, Net string }

// OnWiFi reports whether the default route goes over Wi-Fi. Other systems,
// and a table that cannot be read, answer true; no default route is not
// Wi-Fi.
func (n Network) OnWiFi() bool {
	if n.Route == "" && runtime.GOOS != "linux" {
		return true
	}
	route, net := n.Route, n.Net
	if route == "" {
		route = "/proc/net/route"
	}
	if net == "" {
		net = "/sys/class/net"
	}
	iface, _, err := netroute.Default(route)
	if err != nil {
		return true
	}
	if iface == "" || strings.ContainsAny(iface, "/\\") || iface == "." || iface == ".." {
		return false
	}
	for _, name := range []string{"wireless", "phy80211"} {
		if _, err := os.Stat(filepath.Join(net, iface, name)); err == nil {
			return true
		} else if !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}
