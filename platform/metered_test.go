package platform

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"

	"github.com/heraldpush/herald/internal/dbustest"
)

// fakeNetworkManager exports NetworkManager's main object with a Metered
// property on a private bus.
func fakeNetworkManager(t *testing.T, addr string, metered uint32) {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_, err = prop.Export(conn, "/org/freedesktop/NetworkManager", prop.Map{
		"org.freedesktop.NetworkManager": {"Metered": {Value: metered, Emit: prop.EmitFalse}},
	})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName("org.freedesktop.NetworkManager", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName = %v, %v", reply, err)
	}
}

// routeVia writes a route table whose default route leaves by iface, and a
// /sys/class/net with iface's uevent.
func routeVia(t *testing.T, iface, uevent string) (route, net string) {
	t.Helper()
	dir := t.TempDir()
	route = filepath.Join(dir, "route")
	table := "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n" +
		iface + "\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
	if err := os.WriteFile(route, []byte(table), 0o644); err != nil {
		t.Fatal(err)
	}
	net = filepath.Join(dir, "net")
	if err := os.MkdirAll(filepath.Join(net, iface), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(net, iface, "uevent"), []byte(uevent), 0o644); err != nil {
		t.Fatal(err)
	}
	return route, net
}

func TestMeteredFromInterface(t *testing.T) {
	tests := []struct {
		iface, uevent string
		want          bool
	}{
		{"eth0", "DEVTYPE=\nINTERFACE=eth0\nIFINDEX=2\n", false},
		{"wlan0", "DEVTYPE=wlan\nINTERFACE=wlan0\n", false},
		{"wwan0", "INTERFACE=wwan0\n", true},
		{"wwp0s20f0u6", "INTERFACE=wwp0s20f0u6\n", true},
		{"usb0", "DEVTYPE=wwan\nINTERFACE=usb0\n", true},
		{"rmnet_data0", "", true},
		{"enp3s0", "INTERFACE=enp3s0\nDEVTYPE=wwan-but-not", false},
	}
	for _, tt := range tests {
		route, net := routeVia(t, tt.iface, tt.uevent)
		// A bus address with nothing behind it: NetworkManager cannot
		// answer, so the interface decides.
		n := NetworkCost{SystemBus: "unix:path=" + filepath.Join(t.TempDir(), "none"), Route: route, Net: net}
		if got, how := n.Metered(context.Background()); got != tt.want || how != MeteredByInterface {
			t.Errorf("%s (%q): metered %v by %q, want %v by interface", tt.iface, tt.uevent, got, how, tt.want)
		}
	}
	// Nothing readable: not metered, and nothing told.
	n := NetworkCost{SystemBus: "unix:path=/nonexistent", Route: filepath.Join(t.TempDir(), "missing")}
	if got, how := n.Metered(context.Background()); got || how != "" {
		t.Errorf("no bus, no routes: %v by %q", got, how)
	}
	// A hostile interface name in the route table never leaves /sys.
	route, net := routeVia(t, "eth0", "")
	os.WriteFile(route, []byte("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n..\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\n"), 0o644)
	if got, how := (NetworkCost{SystemBus: "unix:path=/nonexistent", Route: route, Net: net}).Metered(context.Background()); got || how != "" {
		t.Errorf("interface \"..\": %v by %q", got, how)
	}
}

func TestMeteredFromNetworkManager(t *testing.T) {
	tests := []struct {
		name    string
		metered uint32
		iface   string
		want    bool
		how     string
	}{
		{"yes on a wire", nmMeteredYes, "eth0", true, MeteredByNetworkManager},
		{"guessed yes", nmMeteredGuessYes, "wlan0", true, MeteredByNetworkManager},
		{"no on a modem", nmMeteredNo, "wwan0", false, MeteredByNetworkManager},
		{"guessed no", nmMeteredGuessNo, "eth0", false, MeteredByNetworkManager},
		{"unknown: the interface decides", nmMeteredUnknown, "wwan0", true, MeteredByInterface},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := dbustest.SessionBus(t)
			fakeNetworkManager(t, addr, tt.metered)
			route, net := routeVia(t, tt.iface, "")
			got, how := NetworkCost{SystemBus: addr, Route: route, Net: net}.Metered(context.Background())
			if got != tt.want || how != tt.how {
				t.Fatalf("metered %v by %q, want %v by %q", got, how, tt.want, tt.how)
			}
		})
	}
	t.Run("a bus without NetworkManager", func(t *testing.T) {
		addr := dbustest.SessionBus(t)
		route, net := routeVia(t, "wwan0", "")
		if got, how := (NetworkCost{SystemBus: addr, Route: route, Net: net}).Metered(context.Background()); !got || how != MeteredByInterface {
			t.Fatalf("metered %v by %q", got, how)
		}
	})
}

func FuzzUeventDevtype(f *testing.F) {
	for _, s := range []string{"DEVTYPE=wwan\n", "INTERFACE=eth0\nIFINDEX=2\n", "DEVTYPE", "=\n=", "DEVTYPE=wlan\r\nDEVTYPE=wwan"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v := ueventDevtype(b)
		if len(v) > len(b) {
			t.Fatalf("devtype %q longer than its input", v)
		}
		cellular("eth0", b)
	})
}
