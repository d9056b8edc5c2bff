//go:build unix

package platform

import (
	"errors"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

func TestListenSocket(t *testing.T) {
	gid := os.Getegid()
	tests := []struct {
		name     string
		group    string
		wantMode os.FileMode
		wantGID  int
	}{
		{"owner only", "", 0o600, -1},
		{"group by id", strconv.Itoa(gid), 0o660, gid},
	}
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		tests = append(tests, struct {
			name     string
			group    string
			wantMode os.FileMode
			wantGID  int
		}{"group by name", g.Name, 0o660, gid})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "run", "herald.sock")
			l, err := ListenSocket(path, tt.group)
			if err != nil {
				t.Fatalf("ListenSocket: %v", err)
			}
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != tt.wantMode {
				t.Errorf("socket mode %v, want socket %v", fi.Mode(), tt.wantMode)
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && tt.wantGID >= 0 && int(st.Gid) != tt.wantGID {
				t.Errorf("socket gid %d, want %d", st.Gid, tt.wantGID)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the socket", len(entries))
			}
			accepted := make(chan error, 1)
			go func() {
				c, err := l.Accept()
				if err == nil {
					c.Close()
				}
				accepted <- err
			}()
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c.Close()
			if err := <-accepted; err != nil {
				t.Fatalf("accept: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("socket left after Close: %v", err)
			}
		})
	}
}

func TestListenSocketExisting(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		wantErr error
	}{
		{
			name: "stale socket replaced",
			prepare: func(t *testing.T, path string) {
				l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
				if err != nil {
					t.Fatal(err)
				}
				l.SetUnlinkOnClose(false)
				l.Close()
			},
		},
		{
			name: "live socket refused",
			prepare: func(t *testing.T, path string) {
				l, err := net.Listen("unix", path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
			},
			wantErr: ErrSocketInUse,
		},
		{
			name: "regular file kept",
			prepare: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: ErrNotSocket,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "herald.sock")
			tt.prepare(t, path)
			l, err := ListenSocket(path, "")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ListenSocket = %v, want %v", err, tt.wantErr)
			}
			if l != nil {
				l.Close()
			}
		})
	}
}

func TestListenSocketUnknownGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.sock")
	if _, err := ListenSocket(path, "no-such-group-herald"); !errors.Is(err, ErrUnknownGroup) {
		t.Fatalf("ListenSocket = %v, want %v", err, ErrUnknownGroup)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket created despite the error: %v", err)
	}
}
