package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The daemon's hints name a command the user can type: herald when this
// binary is the herald on the PATH, go run under go run, else its path.
func TestSelfCommand(t *testing.T) {
	dir := t.TempDir()
	mk := func(rel string) string {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	installed := mk("gopath/bin/herald")
	built := mk("checkout/herald")
	goRun := mk("go-build1234/b001/exe/herald")
	spaced := mk("my builds/herald")
	onPath := func(string) (string, error) { return installed, nil }
	notOnPath := func(string) (string, error) { return "", exec.ErrNotFound }
	exe := func(p string) func() (string, error) { return func() (string, error) { return p, nil } }
	tests := []struct {
		name string
		exe  func() (string, error)
		look func(string) (string, error)
		want string
	}{
		{"installed, on the PATH", exe(installed), onPath, "herald"},
		{"a build, another herald on the PATH", exe(built), onPath, built},
		{"a build, none on the PATH", exe(built), notOnPath, built},
		{"go run", exe(goRun), notOnPath, "go run ./cmd/herald"},
		{"a path with a space", exe(spaced), notOnPath, "'" + spaced + "'"},
		{"no executable", func() (string, error) { return "", errors.New("unknown") }, notOnPath, "herald"},
	}
	for _, tt := range tests {
		if got := selfCommand(tt.exe, tt.look); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
