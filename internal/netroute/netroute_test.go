package netroute

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefault(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	tests := []struct {
		name, table, iface, gateway string
	}{
		{"none", header + "eth0\t0002A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n", "", ""},
		{"one", header + "eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "eth0", "192.168.2.1"},
		{"lowest metric wins", header +
			"wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
			"eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n", "eth0", "192.168.2.1"},
		{"garbage lines skipped", header + "short line\n" +
			"eth0\t00000000\tZZZZ\t0003\t0\t0\t100\t00000000\t0\t0\t0\n" +
			"eth1\t00000000\t0102A8C0\t0003\t0\t0\tNaN\t00000000\t0\t0\t0\n", "", ""},
		{"empty file", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "route")
			if err := os.WriteFile(file, []byte(tt.table), 0o600); err != nil {
				t.Fatal(err)
			}
			iface, gw, err := Default(file)
			if err != nil || iface != tt.iface || gw != tt.gateway {
				t.Fatalf("Default = %q, %q, %v; want %q, %q", iface, gw, err, tt.iface, tt.gateway)
			}
		})
	}
	if _, _, err := Default(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file read as no route")
	}
}
