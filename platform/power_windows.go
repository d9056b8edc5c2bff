//go:build windows

package platform

import (
	"fmt"
	"syscall"
	"unsafe"
)

// systemPowerStatus is SYSTEM_POWER_STATUS.
type systemPowerStatus struct {
	ACLineStatus        byte
	BatteryFlag         byte
	BatteryLifePercent  byte
	SystemStatusFlag    byte
	BatteryLifeTime     uint32
	BatteryFullLifeTime uint32
}

var procGetSystemPowerStatus = syscall.NewLazyDLL("kernel32.dll").NewProc("GetSystemPowerStatus")

func osPowerLevel() (PowerLevel, bool, error) {
	var st systemPowerStatus
	if r, _, err := procGetSystemPowerStatus.Call(uintptr(unsafe.Pointer(&st))); r == 0 {
		return PowerNormal, true, fmt.Errorf("power: GetSystemPowerStatus: %w", err)
	}
	const (
		acOnline     = 1
		noBattery    = 128
		unknownFlag  = 255
		unknownLevel = 255
	)
	if st.ACLineStatus == acOnline || st.BatteryFlag&noBattery != 0 || st.BatteryFlag == unknownFlag || st.BatteryLifePercent == unknownLevel {
		return PowerNormal, true, nil
	}
	return batteryLevel(true, int(st.BatteryLifePercent)), true, nil
}
