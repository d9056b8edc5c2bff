package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Paths are where the daemon keeps its state.
type Paths struct {
	DataDir    string // the database and anything else that must survive a restart
	Socket     string // the local API socket
	ConfigFile string // the TOML configuration file (see LoadConfig)
}

// ErrNotDirectory is returned by EnsureDir when the path exists but is not a
// directory.
var ErrNotDirectory = errors.New("not a directory")

// DefaultPaths returns the conventional locations for the running OS.
//
// On Linux (and other Unix systems) a system service uses /var/lib/herald,
// /run/herald/herald.sock and /etc/herald/herald.toml. A user service
// (userService=true) follows the XDG base directory specification:
// $XDG_DATA_HOME/herald (~/.local/share/herald), the socket in
// $XDG_RUNTIME_DIR/herald/herald.sock (DataDir/herald.sock when there is no
// runtime directory) and $XDG_CONFIG_HOME/herald/herald.toml
// (~/.config/herald/herald.toml).
//
// On macOS the system service uses /Library/Application Support/Herald with
// the socket in /var/run/herald, and a user service
// ~/Library/Application Support/Herald for everything. On Windows the system
// service uses %ProgramData%\Herald and a user service %LOCALAPPDATA%\Herald,
// with the configuration in %APPDATA%\Herald.
//
// DefaultPaths does not look at the effective user: a non-root caller asking
// for the system paths gets them, and decides itself what to do about it.
func DefaultPaths(userService bool) Paths {
	home, err := os.UserHomeDir()
	if err != nil {
		// Without a home a per-user location cannot be derived; a directory
		// under the temporary directory at least keeps users apart.
		home = filepath.Join(os.TempDir(), fmt.Sprintf("herald-%d", os.Getuid()))
	}
	return defaultPaths(runtime.GOOS, userService, os.Getenv, home)
}

// defaultPaths is DefaultPaths with the OS, the environment and the home
// directory passed in, so every OS's layout can be tested on any OS.
func defaultPaths(goos string, user bool, getenv func(string) string, home string) Paths {
	switch goos {
	case "windows":
		return windowsPaths(user, getenv, home)
	case "darwin":
		return darwinPaths(user, home)
	default:
		return unixPaths(user, getenv, home)
	}
}

func unixPaths(user bool, getenv func(string) string, home string) Paths {
	if !user {
		return Paths{
			DataDir:    "/var/lib/herald",
			Socket:     "/run/herald/herald.sock",
			ConfigFile: "/etc/herald/herald.toml",
		}
	}
	data := filepath.Join(xdgDir(getenv, "XDG_DATA_HOME", home, ".local/share"), "herald")
	cfg := filepath.Join(xdgDir(getenv, "XDG_CONFIG_HOME", home, ".config"), "herald", "herald.toml")
	sock := filepath.Join(data, "herald.sock")
	if rt := getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(rt) {
		sock = filepath.Join(rt, "herald", "herald.sock")
	}
	return Paths{DataDir: data, Socket: sock, ConfigFile: cfg}
}

// xdgDir returns the XDG variable when it is set to an absolute path (the
// specification says relative values are to be ignored) and home/fallback
// otherwise.
func xdgDir(getenv func(string) string, name, home, fallback string) string {
	if v := getenv(name); filepath.IsAbs(v) {
		return v
	}
	return filepath.Join(home, fallback)
}

func darwinPaths(user bool, home string) Paths {
	if !user {
		base := "/Library/Application Support/Herald"
		return Paths{
			DataDir:    base,
			Socket:     "/var/run/herald/herald.sock",
			ConfigFile: base + "/herald.toml",
		}
	}
	base := filepath.Join(home, "Library", "Application Support", "Herald")
	return Paths{
		DataDir:    base,
		Socket:     filepath.Join(base, "herald.sock"),
		ConfigFile: filepath.Join(base, "herald.toml"),
	}
}

func windowsPaths(user bool, getenv func(string) string, home string) Paths {
	if !user {
		base := winJoin(envOr(getenv, "ProgramData", `C:\ProgramData`), "Herald")
		return Paths{
			DataDir:    base,
			Socket:     winJoin(base, "herald.sock"),
			ConfigFile: winJoin(base, "herald.toml"),
		}
	}
	local := winJoin(envOr(getenv, "LOCALAPPDATA", winJoin(home, "AppData", "Local")), "Herald")
	roaming := winJoin(envOr(getenv, "APPDATA", winJoin(home, "AppData", "Roaming")), "Herald")
	return Paths{
		DataDir:    local,
		Socket:     winJoin(local, "herald.sock"),
		ConfigFile: winJoin(roaming, "herald.toml"),
	}
}

func envOr(getenv func(string) string, name, fallback string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return fallback
}

// winJoin joins with backslashes whatever the host OS, because the Windows
// layout is also computed (and tested) elsewhere.
func winJoin(base string, elems ...string) string {
	return strings.Join(append([]string{strings.TrimRight(base, `\/`)}, elems...), `\`)
}

// EnsureDir creates path and any missing parents. A directory that it
// creates gets exactly mode (the umask is not applied to it); an existing
// directory is left as it is, since an administrator may have chosen its
// owner and mode on purpose.
func EnsureDir(path string, mode os.FileMode) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		if !fi.IsDir() {
			return fmt.Errorf("ensure dir %s: %w", path, ErrNotDirectory)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("ensure dir: %w", err)
	}
	if err := os.MkdirAll(path, mode|0o700); err != nil {
		return fmt.Errorf("ensure dir: %w", err)
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("ensure dir: %w", err)
	}
	return nil
}
