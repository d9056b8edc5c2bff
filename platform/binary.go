package platform

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// ServiceBinary is where `herald install` puts the copy of the daemon's
// binary that the OS service runs. The binary a user runs install from is
// often a build in a checkout, which the next rebuild replaces or `git
// clean` removes; the service must not depend on it.
//
// A system service's copy is /usr/local/lib/<name>/herald (macOS too;
// %ProgramFiles%\<name>\herald.exe on Windows), a user service's
// ~/.local/lib/<name>/herald (%LOCALAPPDATA%\<name>\herald.exe). Each
// service name has its own, so a second instance or a test never replaces
// the binary of another.
func ServiceBinary(name string, userService bool) string {
	home, err := os.UserHomeDir()
	if err != nil {
		home = filepath.Join(os.TempDir(), fmt.Sprintf("herald-%d", os.Getuid()))
	}
	return serviceBinary(runtime.GOOS, name, userService, os.Getenv, home)
}

func serviceBinary(goos, name string, user bool, getenv func(string) string, home string) string {
	if goos == "windows" {
		if user {
			return winJoin(envOr(getenv, "LOCALAPPDATA", winJoin(home, "AppData", "Local")), name, "herald.exe")
		}
		return winJoin(envOr(getenv, "ProgramFiles", `C:\Program Files`), name, "herald.exe")
	}
	if user {
		return filepath.Join(home, ".local", "lib", name, "herald")
	}
	return filepath.Join("/usr/local/lib", name, "herald")
}

// copyBinary makes dst an executable copy of src that no reader ever sees
// half written: the bytes go to a temporary file beside dst, which is
// synced and then renamed over it. A service running the old dst keeps
// its open file. dst's directory is created (0755) when missing. Copying
// a file onto itself does nothing.
func copyBinary(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("copy binary: %s is not a regular file", src)
	}
	if di, err := os.Stat(dst); err == nil && os.SameFile(fi, di) {
		return nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("copy binary: %w", err)
	}
	dir := filepath.Dir(dst)
	if err := EnsureDir(dir, 0o755); err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".new-*")
	if err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("copy binary: %w", err)
	}
	return nil
}

// removeBinary removes a copy that install made, and its directory when
// that is left empty.
func removeBinary(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove binary: %w", err)
	}
	os.Remove(filepath.Dir(path)) // only if empty; another file there is not ours
	return nil
}
