package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildWithoutCgo builds heraldsvc as a node on NATS would be built,
// with CGO_ENABLED=0: it carries neither go-sqlite3 nor the device
// database, and serving without --store (SQLite in --db) is refused with
// the reason and what to do, before anything is opened or listened on.
func TestBuildWithoutCgo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds heraldsvc")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	env := append(os.Environ(), "CGO_ENABLED=0")
	list := exec.Command(gobin, "list", "-deps", ".")
	list.Env = env
	deps, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, bad := range []string{"github.com/mattn/go-sqlite3", "github.com/heraldpush/herald/storage", "github.com/heraldpush/herald/server/store/sqlitestore"} {
		if strings.Contains(string(deps)+"\n", bad+"\n") {
			t.Errorf("a cgo-free heraldsvc depends on %s", bad)
		}
	}
	bin := filepath.Join(t.TempDir(), "heraldsvc")
	build := exec.Command(gobin, "build", "-o", bin, ".")
	build.Env = env
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	for _, args := range [][]string{
		{"serve", "--listen", "127.0.0.1:0"},
		{"serve", "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "svc.db")},
	} {
		var stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Fatalf("%v: %v, want exit status 2; stderr: %s", args, err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "--db needs a cgo build") || !strings.Contains(stderr.String(), "--store nats://") {
			t.Errorf("%v: stderr %q does not say that --db needs cgo and what to give instead", args, stderr.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "svc.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a database was created: %v", err)
	}
}
