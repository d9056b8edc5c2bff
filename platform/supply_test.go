package platform

import (
	"os"
	"path/filepath"
	"testing"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOnPower(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{"no battery (a desktop)", map[string]string{}, true},
		{"discharging laptop", map[string]string{"BAT0/type": "Battery", "BAT0/status": "Discharging", "BAT0/capacity": "80",
			"AC/type": "Mains", "AC/online": "0"}, false},
		{"laptop on mains", map[string]string{"BAT0/type": "Battery", "BAT0/status": "Discharging", "AC/type": "Mains", "AC/online": "1"}, true},
		{"charging", map[string]string{"BAT0/type": "Battery", "BAT0/status": "Charging"}, true},
		{"only a mouse battery", map[string]string{"hid/type": "Battery", "hid/scope": "Device", "hid/status": "Discharging"}, true},
	} {
		root := t.TempDir()
		writeTree(t, root, c.files)
		if got := (PowerSource{Root: root}).OnPower(); got != c.want {
			t.Errorf("%s: OnPower = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestOnWiFi(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	for _, c := range []struct {
		name, route string
		net         map[string]string
		want        bool
	}{
		{"wired default", header + "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
			map[string]string{"eth0/type": "1", "wlan0/wireless/x": ""}, false},
		{"wifi default", header + "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n",
			map[string]string{"wlan0/phy80211/name": "phy0"}, true},
		{"the lower metric wins", header + "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
			"eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", map[string]string{"wlan0/wireless/x": ""}, false},
		{"no default route", header + "eth0\t0000A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n", nil, false},
		{"a hostile interface name", header + "..\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
			map[string]string{"wireless/x": ""}, false},
	} {
		dir := t.TempDir()
		route := filepath.Join(dir, "route")
		if err := os.WriteFile(route, []byte(c.route), 0o644); err != nil {
			t.Fatal(err)
		}
		net := filepath.Join(dir, "net")
		writeTree(t, net, c.net)
		if got := (Network{Route: route, Net: net}).OnWiFi(); got != c.want {
			t.Errorf("%s: OnWiFi = %v, want %v", c.name, got, c.want)
		}
	}
	if !(Network{Route: filepath.Join(t.TempDir(), "missing")}).OnWiFi() {
		t.Error("an unreadable route table should count as Wi-Fi (nothing held)")
	}
}
