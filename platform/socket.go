package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
)

var (
	// ErrSocketInUse is returned by ListenSocket when another process is
	// accepting connections on the socket.
	ErrSocketInUse = errors.New("socket in use by another process")
	// ErrNotSocket is returned by ListenSocket when the path exists and is
	// not a socket, so removing it could destroy someone's file.
	ErrNotSocket = errors.New("exists and is not a socket")
	// ErrUnknownGroup is returned by ListenSocket for a group that does not
	// exist.
	ErrUnknownGroup = errors.New("unknown group")
)

// ListenSocket listens on the local API's Unix socket at path. With group
// empty only the owner may connect (mode 0600); otherwise members of group
// (a name or a numeric id) may too (mode 0660, group-owned). The socket is
// created under a temporary name, given its mode and group, and then
// renamed into place, so it is never reachable with other permissions. A
// stale socket left by a crashed daemon is replaced; a live one is
// ErrSocketInUse. The parent directory is created (0755) if missing.
// Closing the listener removes the socket. On Windows the mode and group are
// not applied.
func ListenSocket(path, group string) (net.Listener, error) {
	gid := -1
	mode := os.FileMode(0o600)
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", path, err)
		}
		gid, mode = g, 0o660
	}
	if err := EnsureDir(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if runtime.GOOS == "windows" {
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", path, err)
		}
		return l, nil
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	_ = os.Remove(tmp)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		_ = l.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(err)
	}
	if gid >= 0 {
		if err := os.Lchown(tmp, -1, gid); err != nil {
			return fail(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	return &socketListener{UnixListener: l, path: path}, nil
}

// socketListener removes the socket under its final name on Close (the
// standard listener would remove the temporary name it was bound to). The
// name goes first: once Accept fails the daemon may exit at any moment, and
// the socket must not outlive it.
type socketListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *socketListener) Close() error {
	l.once.Do(func() { _ = os.Remove(l.path) })
	return l.UnixListener.Close()
}

func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if runtime.GOOS != "windows" && fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s %w", path, ErrNotSocket)
	}
	if owner, live := SocketOwner(path); live {
		return fmt.Errorf("%w: %s", ErrSocketInUse, owner)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func lookupGroup(group string) (int, error) {
	if id, err := strconv.Atoi(group); err == nil && id >= 0 {
		return id, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return -1, fmt.Errorf("%w %q: %w", ErrUnknownGroup, group, err)
	}
	id, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("%w %q: gid %q", ErrUnknownGroup, group, g.Gid)
	}
	return id, nil
}
