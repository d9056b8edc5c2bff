package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/internal/testenv"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/server"
)

// unsetEnv clears the variables that override the configuration file for
// the test's duration.
func unsetEnv(t *testing.T) {
	for _, k := range []string{platform.EnvService, platform.EnvData, platform.EnvSocket, platform.EnvUI, "GOMEMLIMIT", EnvDevice} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
}

// printedConfig runs `herald config --config file` and returns its output
// without the comment line that names the file.
func printedConfig(t *testing.T, file string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run([]string{"config", "--config", file}, &out, &errb); code != 0 {
		t.Fatalf("herald config --config %s: exit %d: %s", file, code, errb.String())
	}
	first, rest, _ := strings.Cut(out.String(), "\n")
	if !strings.HasPrefix(first, "# ") {
		t.Fatalf("first line %q is not a comment", first)
	}
	return rest
}

// TestConfigRoundTrip: `herald config > herald.toml && herald run --config
// herald.toml` with every key set: the printed file loads back unchanged,
// prints every key, every key is documented, and a daemon run with it
// reports the same configuration in `herald status --json`.
func TestConfigRoundTrip(t *testing.T) {
	unsetEnv(t)
	dir := t.TempDir()
	svc := testenv.Service(t, "", server.ServeConfig{})
	sock := testenv.SocketPath(t)
	full := fmt.Sprintf(`service = %q
listen = "127.0.0.1:0"
data = %q
socket = %q
socket_group = "%d"
ui = "127.0.0.1:0"
display = "log"
power = "low"
log_level = "warn"
memory_limit = "16MiB"
toasts_kept = 10
toasts_max_age = "1h"
events_kept = 7
events_max_age = "30m"

[handlers.demo]
command = ["/bin/true"]
timeout = "5s"

[handlers."com.example.chat"]
command = ["/bin/echo", "hi there"]
`, svc.URL(), filepath.Join(dir, "data"), sock, os.Getgid())

	for _, tc := range []struct{ name, file string }{{"every key set", full}, {"defaults", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			f1 := filepath.Join(t.TempDir(), "herald.toml")
			if tc.file != "" {
				if err := os.WriteFile(f1, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out1 := printedConfig(t, f1)
			f2 := filepath.Join(t.TempDir(), "printed.toml")
			if err := os.WriteFile(f2, []byte(out1), 0o600); err != nil {
				t.Fatal(err)
			}
			if out2 := printedConfig(t, f2); out2 != out1 {
				t.Fatalf("printed again differs:\n%s\nfirst:\n%s", out2, out1)
			}
			s1, _, err1 := loadSettings("run", []string{"--config", f1})
			s2, _, err2 := loadSettings("run", []string{"--config", f2})
			if err1 != nil || err2 != nil {
				t.Fatalf("load: %v, %v", err1, err2)
			}
			s1.ConfigFile, s2.ConfigFile = "", ""
			if !reflect.DeepEqual(s1, s2) {
				t.Fatalf("loaded back differs:\n%+v\n%+v", s2, s1)
			}
		})
	}

	// Every key of the file is printed and documented.
	printed := printedConfig(t, writeFile(t, full))
	var keys map[string]any
	if _, err := toml.Decode(printed, &keys); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	ct := reflect.TypeOf(platform.Config{})
	for i := range ct.NumField() {
		key := strings.Split(ct.Field(i).Tag.Get("toml"), ",")[0]
		if key == "handlers" {
			key = "handlers.<app>" // a table of apps
		} else if _, ok := keys[key]; !ok {
			t.Errorf("key %q not printed", key)
		}
		if !bytes.Contains(doc, []byte("| `"+key+"` |")) {
			t.Errorf("key %q not documented in docs/configuration.md", key)
		}
	}
	for k := range keys {
		if !bytes.Contains(doc, []byte("| `"+k)) {
			t.Errorf("printed key %q not documented", k)
		}
	}
	for _, k := range []string{"handlers.<app>.command", "handlers.<app>.timeout"} {
		if !bytes.Contains(doc, []byte("| `"+k+"` |")) {
			t.Errorf("key %q not documented", k)
		}
	}

	// The daemon runs with the printed file and reports it.
	printedFile := writeFile(t, printed)
	cmd := exec.Command(heraldBinary(t), "run", "--config", printedFile)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	var st app.Status
	testenv.Eventually(t, 20*time.Second, "herald run --config printed.toml answering", func() bool {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("herald run --config %s ended: %v\n%s", printedFile, err, stderr.String())
		default:
		}
		var err error
		st, err = app.NewClient(sock).Status(context.Background())
		return err == nil
	})
	want, _ := json.Marshal(keys)
	got, _ := json.Marshal(st.Config)
	if !bytes.Equal(want, got) {
		t.Errorf("status config:\n%s\nwant the printed file:\n%s", got, want)
	}
	cmd.Process.Signal(syscall.SIGTERM)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "herald.toml")
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}
