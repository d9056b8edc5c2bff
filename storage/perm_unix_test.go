//go:build unix

package storage

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestOtherUserCannotReadSecret is the attack itself: another user (65534,
// nobody), in a real process, reads the device database, its WAL and the
// WAL's index from a data directory pre-created 0755 under traversable
// parents. Every read is refused; the daemon's own user reads them. It
// needs root to start a process as another user, and is skipped otherwise.
func TestOtherUserCannotReadSecret(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a process as another user")
	}
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat")
	}
	base := t.TempDir()
	// t.TempDir's directories are 0700; open them up to the other user so
	// only the files' own modes stand in the way.
	for p := base; p != filepath.Clean(os.TempDir()) && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(base, "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "herald.db")
	d := openTestDevice(t, file)
	if err := d.Phone("").SaveIdentity(context.Background(), Identity{Service: "http://svc", DeviceID: "d", Secret: "s3cret", EnrolledAt: devT0}); err != nil {
		t.Fatal(err)
	}
	refused := 0
	names := []string{file, file + "-wal", file + "-shm"}
	for _, name := range names {
		other := exec.Command(cat, name)
		other.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := other.CombinedOutput(); err == nil {
			t.Errorf("user 65534 read %s (%d bytes)", filepath.Base(name), len(out))
		} else {
			refused++
		}
		if err := exec.Command(cat, name).Run(); err != nil {
			t.Errorf("the daemon's own user cannot read %s: %v", filepath.Base(name), err)
		}
	}
	// The directory itself was open to the other user: only the files'
	// modes refused it.
	ls := exec.Command("ls", dir)
	ls.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := ls.Run(); err != nil {
		t.Fatalf("user 65534 cannot list the 0755 data directory, so the test proves nothing: %v", err)
	}
	t.Logf("user 65534 reading the device database from a 0755 data directory: %d files tried, %d refused; the daemon's user reads all %d", len(names), refused, len(names))
}
