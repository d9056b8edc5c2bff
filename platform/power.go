package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// PowerLevel is the device's power state as the service sees it: at low
// power toasts and tiles are suppressed, at critical power everything is.
type PowerLevel string

// The power levels.
const (
	PowerNormal   PowerLevel = "normal"
	PowerLow      PowerLevel = "low"
	PowerCritical PowerLevel = "critical"
)

// Battery thresholds, in percent of full charge, at or below which a
// discharging battery makes the power level low or critical.
const (
	LowBatteryPercent      = 20
	CriticalBatteryPercent = 5
)

var (
	// ErrInvalidPowerLevel is returned by ParsePowerLevel.
	ErrInvalidPowerLevel = errors.New("invalid power level")
	// ErrBatteryUnreadable is returned by PowerSource.Level when a battery
	// is discharging but its charge cannot be read.
	ErrBatteryUnreadable = errors.New("battery charge unreadable")
)

// ParsePowerLevel parses "normal", "low" or "critical".
func ParsePowerLevel(s string) (PowerLevel, error) {
	switch l := PowerLevel(s); l {
	case PowerNormal, PowerLow, PowerCritical:
		return l, nil
	}
	return "", fmt.Errorf("%w %q: want normal, low or critical", ErrInvalidPowerLevel, s)
}

// DefaultPowerSupplyRoot is where Linux lists power supplies.
const DefaultPowerSupplyRoot = "/sys/class/power_supply"

// PowerSource reads the power level from the OS.
//
// On Linux it reads the power supplies under Root (default
// /sys/class/power_supply). A system battery (type Battery, not a
// peripheral's) that is discharging with a capacity at or below 20 % makes
// the level low, at or below 5 % critical. A battery that is charging, full
// or not charging, an external supply (Mains, USB) that is online, or no
// battery at all (a desktop, a server, a container) is normal. With several
// batteries their mean charge counts.
//
// With Root empty, macOS reads the same thresholds from "pmset -g batt" and
// Windows from GetSystemPowerStatus; other systems read sysfs.
type PowerSource struct{ Root string }

// Level returns the current power level. On error the level is
// PowerNormal, so a caller that only logs the error keeps working.
func (p PowerSource) Level() (PowerLevel, error) {
	if p.Root == "" {
		if l, handled, err := osPowerLevel(); handled {
			return l, err
		}
	}
	root := p.Root
	if root == "" {
		root = DefaultPowerSupplyRoot
	}
	return sysfsPowerLevel(root)
}

// batteryLevel applies the thresholds to one reading.
func batteryLevel(discharging bool, percent int) PowerLevel {
	switch {
	case !discharging:
		return PowerNormal
	case percent <= CriticalBatteryPercent:
		return PowerCritical
	case percent <= LowBatteryPercent:
		return PowerLow
	}
	return PowerNormal
}

func sysfsPowerLevel(root string) (PowerLevel, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return PowerNormal, nil
	}
	if err != nil {
		return PowerNormal, fmt.Errorf("power: %w", err)
	}
	var (
		percents    []int
		discharging bool
		unreadable  bool
	)
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		read := func(name string) string {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return ""
			}
			return strings.TrimSpace(string(b))
		}
		switch read("type") {
		case "Mains", "USB", "USB_C", "USB_PD", "USB_PD_DRP", "Wireless":
			if read("online") == "1" {
				return PowerNormal, nil
			}
		case "Battery":
			if read("scope") == "Device" || read("present") == "0" {
				continue // a mouse or headset battery, or an empty bay
			}
			switch read("status") {
			case "Charging", "Full", "Not charging":
				return PowerNormal, nil
			case "Discharging":
				discharging = true
			}
			if pct, ok := sysfsPercent(read); ok {
				percents = append(percents, pct)
			} else {
				unreadable = true
			}
		}
	}
	if !discharging {
		return PowerNormal, nil
	}
	if len(percents) == 0 {
		if unreadable {
			return PowerNormal, fmt.Errorf("power: %w under %s", ErrBatteryUnreadable, root)
		}
		return PowerNormal, nil
	}
	sum := 0
	for _, p := range percents {
		sum += p
	}
	return batteryLevel(true, sum/len(percents)), nil
}

// sysfsPercent reads a battery's charge: capacity when the driver has it,
// otherwise energy_now/energy_full or charge_now/charge_full.
func sysfsPercent(read func(string) string) (int, bool) {
	if v, err := strconv.Atoi(read("capacity")); err == nil && v >= 0 {
		return min(v, 100), true
	}
	for _, kind := range []string{"energy", "charge"} {
		now, err1 := strconv.ParseFloat(read(kind+"_now"), 64)
		full, err2 := strconv.ParseFloat(read(kind+"_full"), 64)
		if err1 == nil && err2 == nil && full > 0 && now >= 0 {
			return min(int(now*100/full+0.5), 100), true
		}
	}
	return 0, false
}

var pmsetBatteryRE = regexp.MustCompile(`(\d+)%;\s*([A-Za-z ]+?);`)

// parsePmset reads the output of macOS's "pmset -g batt":
//
//	Now drawing from 'Battery Power'
//	 -InternalBattery-0 (id=4653155)	18%; discharging; 0:52 remaining present: true
func parsePmset(out string) PowerLevel {
	if strings.Contains(out, "'AC Power'") {
		return PowerNormal
	}
	m := pmsetBatteryRE.FindStringSubmatch(out)
	if m == nil {
		return PowerNormal
	}
	pct, _ := strconv.Atoi(m[1])
	return batteryLevel(m[2] == "discharging", pct)
}
