//go:build darwin

package platform

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// macOSDisplay shows toasts with AppleScript's "display notification". The
// texts travel as arguments, never inside the script, so nothing needs
// escaping.
type macOSDisplay struct{ osascript string }

func newMacOSDisplay() (Display, error) {
	p, err := exec.LookPath("osascript")
	if err != nil {
		return nil, fmt.Errorf("%w: macos: %w", ErrDisplayUnavailable, err)
	}
	return macOSDisplay{osascript: p}, nil
}

func (macOSDisplay) Name() string { return "macos" }

const macOSScript = `on run argv
	if item 4 of argv is "" then
		display notification (item 3 of argv) with title (item 1 of argv) subtitle (item 2 of argv)
	else
		display notification (item 3 of argv) with title (item 1 of argv) subtitle (item 2 of argv) sound name (item 4 of argv)
	end if
end run`

func (d macOSDisplay) Show(ctx context.Context, t Toast) error {
	ctx, cancel := withShowTimeout(ctx)
	defer cancel()
	sound := ""
	if !t.Silent {
		// A sound name is one of the system sounds (Glass, Ping, …); a path
		// such as /Sounds/Glass.wav names it by its base name.
		sound = strings.TrimSuffix(filepath.Base(t.Sound), filepath.Ext(t.Sound))
		if t.Sound == "" {
			sound = "default"
		}
	}
	cmd := exec.CommandContext(ctx, d.osascript, "-e", macOSScript, toastTitle(t), t.Text1, t.Text2, sound)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("macos: osascript: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func newWindowsDisplay() (Display, error) {
	return nil, fmt.Errorf("%w: windows on darwin", ErrDisplayUnavailable)
}
