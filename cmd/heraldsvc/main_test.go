package main

import (
	"bytes"
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
