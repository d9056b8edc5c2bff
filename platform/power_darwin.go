//go:build darwin

package platform

import (
	"fmt"
	"os/exec"
)

func osPowerLevel() (PowerLevel, bool, error) {
	out, err := exec.Command("pmset", "-g", "batt").Output()
	if err != nil {
		return PowerNormal, true, fmt.Errorf("power: pmset: %w", err)
	}
	return parsePmset(string(out)), true, nil
}
