package platform

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// platformSysV is kardianos' name for System V init, which it falls back to
// on Linux without systemd, upstart, OpenRC, runit or procd.
const platformSysV = "unix-systemv"

// sysvEtc is where System V keeps init.d and the rc?.d runlevel links.
const sysvEtc = "/etc"

// sysvSafe checks that the library's init script can carry exe and args:
// it writes them into a double-quoted shell variable that is later expanded
// unquoted, so whitespace splits a word and quotes, "$", "`", "\" and glob
// characters change it.
func sysvSafe(exe string, args []string) error {
	for _, w := range append([]string{exe}, args...) {
		if w == "" || strings.Trim(w, safeWordChars) != "" {
			return fmt.Errorf("%w: %q (System V allows only letters, digits and %q)", ErrUnsafeArgument, w, "-_./:=,@+")
		}
	}
	return nil
}

// sysvStatus asks the init script for the service's state: the library's
// script prints "Running" or "Stopped".
func sysvStatus(etc, name string) (ServiceStatus, error) {
	script := filepath.Join(etc, "init.d", name)
	if _, err := os.Stat(script); errors.Is(err, fs.ErrNotExist) {
		return StatusNotInstalled, nil
	} else if err != nil {
		return StatusUnknown, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, script, "status").Output()
	switch {
	case bytes.HasPrefix(out, []byte("Running")):
		return StatusRunning, nil
	case bytes.HasPrefix(out, []byte("Stopped")):
		return StatusStopped, nil
	case err != nil:
		return StatusUnknown, fmt.Errorf("%s status: %w", script, err)
	}
	return StatusUnknown, nil
}

// removeSysvLinks removes the runlevel links (/etc/rc?.d/S50name,
// K02name, or any other priority) that point at /etc/init.d/name. The
// library's uninstall removes only the script and leaves them dangling.
func removeSysvLinks(etc, name string) error {
	links, err := filepath.Glob(filepath.Join(etc, "rc?.d", "[SK][0-9][0-9]"+name))
	if err != nil {
		return fmt.Errorf("remove runlevel links: %w", err)
	}
	script := filepath.Join(etc, "init.d", name)
	var errs []error
	for _, l := range links {
		target, err := os.Readlink(l)
		if err != nil {
			continue // not a link: not ours
		}
		if target != script && filepath.Join(filepath.Dir(l), target) != script {
			continue
		}
		if err := os.Remove(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove runlevel links: %w", err)
	}
	return nil
}
