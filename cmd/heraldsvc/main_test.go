package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestSubcommandHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, "heraldsvc serve"},
		{[]string{"serve", "--help"}, "usage: heraldsvc serve [--listen ADDR]"},
		{[]string{"serve", "-h"}, "--queue-depth N"},
		{[]string{"send", "--help"}, "heraldsvc send tile  URI"},
		{[]string{"send", "raw", "--help"}, "heraldsvc send raw   URI"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Errorf("heraldsvc %v: exit %d, stderr %q", tc.args, code, stderr.String())
		}
		if !strings.Contains(stdout.String(), tc.want) {
			t.Errorf("heraldsvc %v: stdout lacks %q:\n%s", tc.args, tc.want, stdout.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"serve", "--no-such-flag"}, strings.NewReader(""), &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "usage: heraldsvc serve") {
		t.Errorf("serve --no-such-flag: exit %d, stderr %q", code, stderr.String())
	}
}

// A port in use names the process holding it (this test) and the flag.
func TestServePortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	code := run([]string{"serve", "--listen", ln.Addr().String(), "--db", filepath.Join(t.TempDir(), "svc.db")}, strings.NewReader(""), &stdout, &stderr)
	want := fmt.Sprintf("%s is in use by pid %d", ln.Addr(), os.Getpid())
	if runtime.GOOS != "linux" { // only Linux tells who holds a port
		want = ln.Addr().String() + " is in use by"
	}
	if code != 1 || !strings.Contains(stderr.String(), want) || !strings.Contains(stderr.String(), "--listen ADDR") {
		t.Fatalf("exit %d, stderr %q; want %q and the flag", code, stderr.String(), want)
	}
}
