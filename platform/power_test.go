package platform

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// supply is one device under /sys/class/power_supply: attribute → value.
type supply map[string]string

func fakeSysfs(t *testing.T, devices map[string]supply) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "power_supply")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, attrs := range devices {
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for k, v := range attrs {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func battery(status, capacity string) supply {
	return supply{"type": "Battery", "status": status, "capacity": capacity, "present": "1"}
}

func TestPowerSourceLevel(t *testing.T) {
	ac := func(online string) supply { return supply{"type": "Mains", "online": online} }
	tests := []struct {
		name    string
		devices map[string]supply
		want    PowerLevel
		wantErr error
	}{
		{"no supplies", map[string]supply{}, PowerNormal, nil},
		{"AC only", map[string]supply{"AC": ac("1")}, PowerNormal, nil},
		{"discharging 80%", map[string]supply{"BAT0": battery("Discharging", "80")}, PowerNormal, nil},
		{"discharging 21%", map[string]supply{"BAT0": battery("Discharging", "21")}, PowerNormal, nil},
		{"discharging 20% is low", map[string]supply{"BAT0": battery("Discharging", "20")}, PowerLow, nil},
		{"discharging 6%", map[string]supply{"BAT0": battery("Discharging", "6")}, PowerLow, nil},
		{"discharging 5% is critical", map[string]supply{"BAT0": battery("Discharging", "5")}, PowerCritical, nil},
		{"discharging 0%", map[string]supply{"BAT0": battery("Discharging", "0")}, PowerCritical, nil},
		{"charging at 3%", map[string]supply{"BAT0": battery("Charging", "3")}, PowerNormal, nil},
		{"full", map[string]supply{"BAT0": battery("Full", "100")}, PowerNormal, nil},
		{"not charging at 4%", map[string]supply{"BAT0": battery("Not charging", "4")}, PowerNormal, nil},
		{"AC online wins over a discharging reading", map[string]supply{"AC": ac("1"), "BAT0": battery("Discharging", "3")}, PowerNormal, nil},
		{"AC offline", map[string]supply{"AC": ac("0"), "BAT0": battery("Discharging", "15")}, PowerLow, nil},
		{"USB-C supply online", map[string]supply{"ucsi": {"type": "USB", "online": "1"}, "BAT0": battery("Discharging", "3")}, PowerNormal, nil},
		{
			"peripheral battery ignored",
			map[string]supply{"hidpp_battery_0": {"type": "Battery", "scope": "Device", "status": "Discharging", "capacity": "2"}},
			PowerNormal, nil,
		},
		{
			"empty bay ignored",
			map[string]supply{"BAT1": {"type": "Battery", "present": "0", "status": "Discharging", "capacity": "0"}, "BAT0": battery("Discharging", "50")},
			PowerNormal, nil,
		},
		{
			"two batteries: mean charge",
			map[string]supply{"BAT0": battery("Discharging", "4"), "BAT1": battery("Unknown", "30")},
			PowerLow, nil,
		},
		{
			"energy when no capacity",
			map[string]supply{"BAT0": {"type": "Battery", "status": "Discharging", "energy_now": "2000000", "energy_full": "50000000"}},
			PowerCritical, nil,
		},
		{
			"charge when no capacity",
			map[string]supply{"BAT0": {"type": "Battery", "status": "Discharging", "charge_now": "900", "charge_full": "5000"}},
			PowerLow, nil,
		},
		{
			"unreadable charge",
			map[string]supply{"BAT0": {"type": "Battery", "status": "Discharging"}},
			PowerNormal, ErrBatteryUnreadable,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeSysfs(t, tt.devices)
			got, err := PowerSource{Root: root}.Level()
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Errorf("Level() = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestPowerSourceMissingRoot(t *testing.T) {
	got, err := PowerSource{Root: filepath.Join(t.TempDir(), "absent")}.Level()
	if got != PowerNormal || err != nil {
		t.Errorf("Level() without sysfs = %q, %v; want normal, nil", got, err)
	}
}

func TestParsePowerLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    PowerLevel
		wantErr error
	}{
		{"normal", PowerNormal, nil},
		{"low", PowerLow, nil},
		{"critical", PowerCritical, nil},
		{"auto", "", ErrInvalidPowerLevel},
		{"", "", ErrInvalidPowerLevel},
		{"LOW", "", ErrInvalidPowerLevel},
	}
	for _, tt := range tests {
		got, err := ParsePowerLevel(tt.in)
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("ParsePowerLevel(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParsePmset(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want PowerLevel
	}{
		{"on AC", "Now drawing from 'AC Power'\n -InternalBattery-0 (id=1)\t3%; charging; 2:00 remaining present: true\n", PowerNormal},
		{"battery high", "Now drawing from 'Battery Power'\n -InternalBattery-0 (id=1)\t85%; discharging; 4:10 remaining present: true\n", PowerNormal},
		{"battery low", "Now drawing from 'Battery Power'\n -InternalBattery-0 (id=1)\t18%; discharging; 0:52 remaining present: true\n", PowerLow},
		{"battery critical", "Now drawing from 'Battery Power'\n -InternalBattery-0 (id=1)\t5%; discharging; (no estimate) present: true\n", PowerCritical},
		{"finishing charge", "Now drawing from 'Battery Power'\n -InternalBattery-0 (id=1)\t4%; finishing charge; present: true\n", PowerNormal},
		{"desktop", "Now drawing from 'AC Power'\n", PowerNormal},
		{"garbage", "pmset: unknown\n", PowerNormal},
	}
	for _, tt := range tests {
		if got := parsePmset(tt.out); got != tt.want {
			t.Errorf("%s: parsePmset = %q, want %q", tt.name, got, tt.want)
		}
	}
}
