package platform

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestServiceBinary(t *testing.T) {
	env := map[string]string{"LOCALAPPDATA": `C:\Users\u\AppData\Local`, "ProgramFiles": `D:\Programs`}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		goos, name string
		user       bool
		want       string
	}{
		{"linux", "herald", false, "/usr/local/lib/herald/herald"},
		{"linux", "herald-2", false, "/usr/local/lib/herald-2/herald"},
		{"linux", "herald", true, "/home/u/.local/lib/herald/herald"},
		{"darwin", "herald", false, "/usr/local/lib/herald/herald"},
		{"windows", "herald", false, `D:\Programs\herald\herald.exe`},
		{"windows", "herald", true, `C:\Users\u\AppData\Local\herald\herald.exe`},
	}
	for _, tt := range tests {
		got := serviceBinary(tt.goos, tt.name, tt.user, getenv, "/home/u")
		if runtime.GOOS != "windows" && tt.goos != "windows" {
			got = filepath.ToSlash(got)
		}
		if got != tt.want {
			t.Errorf("serviceBinary(%s, %s, user=%v) = %q, want %q", tt.goos, tt.name, tt.user, got, tt.want)
		}
	}
}

// The service's copy of the binary: created with its directory, replaced
// whole (a reader sees the old file or the new one, never a half), left
// alone when it is the source itself, and never touched when the source
// cannot be read.
func TestCopyBinary(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "build", "herald")
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	v1 := bytes.Repeat([]byte("herald v1 "), 100_000)
	if err := os.WriteFile(src, v1, 0o700); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "lib", "herald", "herald")
	check := func(want []byte) {
		t.Helper()
		got, err := os.ReadFile(dst)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("copy holds %d bytes (%v), want %d", len(got), err, len(want))
		}
		fi, err := os.Stat(dst)
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Fatalf("copy's mode %v (%v), want 0755", fi.Mode(), err)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dst), ".herald.new-*")); len(left) != 0 {
			t.Fatalf("temporary files left: %v", left)
		}
	}
	if err := copyBinary(src, dst); err != nil {
		t.Fatal(err)
	}
	check(v1)

	// A rebuild, then install again: the old copy is replaced by rename,
	// so a process holding the old file keeps reading the old bytes.
	old, err := os.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	v2 := []byte("herald v2")
	if err := os.WriteFile(src, v2, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyBinary(src, dst); err != nil {
		t.Fatal(err)
	}
	check(v2)
	head := make([]byte, 10)
	if _, err := old.ReadAt(head, 0); err != nil || string(head) != "herald v1 " {
		t.Fatalf("the running copy changed under its reader: %q %v", head, err)
	}

	// The installed copy installing itself: nothing to do.
	if err := copyBinary(dst, dst); err != nil {
		t.Fatalf("copy onto itself: %v", err)
	}
	check(v2)

	// A source that is gone or not a file leaves the copy as it was.
	for _, bad := range []string{filepath.Join(dir, "missing"), filepath.Dir(src)} {
		if err := copyBinary(bad, dst); err == nil {
			t.Errorf("copy from %s: no error", bad)
		}
		check(v2)
	}

	if err := removeBinary(dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(dst)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the copy's empty directory is left: %v", err)
	}
	if err := removeBinary(dst); err != nil {
		t.Errorf("removing a copy already gone: %v", err)
	}
}
