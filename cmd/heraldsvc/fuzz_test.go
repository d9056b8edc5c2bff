package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzServeConfig: any file is loaded or refused with exit 2 and a reason,
// never a panic; a file that loads prints a configuration that loads back
// and prints the same again.
func FuzzServeConfig(f *testing.F) {
	f.Add([]byte(everyKey))
	for _, s := range []string{
		"",
		"queue_depth = 5\nchannel_rate = 2.5\nsender_rate = -1\nlimit_loopback = true\nread_timeout = \"1m30s\"\n",
		"listen = \"[::1]:8790\"\npublic_url = \"https://push.example.net/base\"\nlog_level = \"DEBUG\"\n",
		"tls-listen = \"127.0.0.1:0\"\nconfig = \"x\"\n[table]\nk = 1\n",
		"max_body = 0\nmax_in_flight = 9223372036854775807\nchannel_rate = nan\n",
		"db = \"\"\"\nmulti\nline\"\"\"\nnats_password = 'lit\"eral'\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		t.Setenv(EnvConfig, "")
		dir := t.TempDir()
		path := filepath.Join(dir, "in.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		var out1, errb bytes.Buffer
		switch code := run([]string{"config", "--config", path}, strings.NewReader(""), &out1, &errb); {
		case code == 2 && errb.Len() > 0 && out1.Len() == 0:
			return
		case code != 0:
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out1.String(), errb.String())
		}
		printed := filepath.Join(dir, "printed.toml")
		_, body, _ := strings.Cut(out1.String(), "\n")
		if err := os.WriteFile(printed, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var out2 bytes.Buffer
		errb.Reset()
		if code := run([]string{"config", "--config", printed}, strings.NewReader(""), &out2, &errb); code != 0 {
			t.Fatalf("printed configuration does not load: %s\n%s", errb.String(), body)
		}
		if _, again, _ := strings.Cut(out2.String(), "\n"); again != body {
			t.Fatalf("printed again differs:\n%s\nfirst:\n%s", again, body)
		}
	})
}
