//go:build !darwin && !windows

package platform

import (
	"fmt"
	"runtime"
)

func newMacOSDisplay() (Display, error) {
	return nil, fmt.Errorf("%w: macos on %s", ErrDisplayUnavailable, runtime.GOOS)
}

func newWindowsDisplay() (Display, error) {
	return nil, fmt.Errorf("%w: windows on %s", ErrDisplayUnavailable, runtime.GOOS)
}
