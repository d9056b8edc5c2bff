package platform

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestDefaultPaths(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name string
		goos string
		user bool
		env  func(string) string
		home string
		want Paths
	}{
		{
			name: "linux system",
			goos: "linux",
			env:  env("XDG_DATA_HOME", "/ignored"),
			home: "/home/ann",
			want: Paths{"/var/lib/herald", "/run/herald/herald.sock", "/etc/herald/herald.toml"},
		},
		{
			name: "linux user with XDG",
			goos: "linux", user: true,
			env:  env("XDG_DATA_HOME", "/x/data", "XDG_CONFIG_HOME", "/x/config", "XDG_RUNTIME_DIR", "/run/user/1000"),
			home: "/home/ann",
			want: Paths{"/x/data/herald", "/run/user/1000/herald/herald.sock", "/x/config/herald/herald.toml"},
		},
		{
			name: "linux user without XDG",
			goos: "linux", user: true,
			env:  env(),
			home: "/home/ann",
			want: Paths{"/home/ann/.local/share/herald", "/home/ann/.local/share/herald/herald.sock", "/home/ann/.config/herald/herald.toml"},
		},
		{
			name: "linux user ignores relative XDG",
			goos: "linux", user: true,
			env:  env("XDG_DATA_HOME", "rel/data", "XDG_CONFIG_HOME", "rel", "XDG_RUNTIME_DIR", "run"),
			home: "/home/ann",
			want: Paths{"/home/ann/.local/share/herald", "/home/ann/.local/share/herald/herald.sock", "/home/ann/.config/herald/herald.toml"},
		},
		{
			name: "freebsd system",
			goos: "freebsd",
			env:  env(),
			want: Paths{"/var/lib/herald", "/run/herald/herald.sock", "/etc/herald/herald.toml"},
		},
		{
			name: "darwin system",
			goos: "darwin",
			env:  env(),
			home: "/Users/ann",
			want: Paths{"/Library/Application Support/Herald", "/var/run/herald/herald.sock", "/Library/Application Support/Herald/herald.toml"},
		},
		{
			name: "darwin user",
			goos: "darwin", user: true,
			env:  env(),
			home: "/Users/ann",
			want: Paths{"/Users/ann/Library/Application Support/Herald", "/Users/ann/Library/Application Support/Herald/herald.sock", "/Users/ann/Library/Application Support/Herald/herald.toml"},
		},
		{
			name: "windows system",
			goos: "windows",
			env:  env("ProgramData", `D:\ProgramData\`),
			want: Paths{`D:\ProgramData\Herald`, `D:\ProgramData\Herald\herald.sock`, `D:\ProgramData\Herald\herald.toml`},
		},
		{
			name: "windows system without ProgramData",
			goos: "windows",
			env:  env(),
			want: Paths{`C:\ProgramData\Herald`, `C:\ProgramData\Herald\herald.sock`, `C:\ProgramData\Herald\herald.toml`},
		},
		{
			name: "windows user",
			goos: "windows", user: true,
			env:  env("LOCALAPPDATA", `C:\Users\ann\AppData\Local`, "APPDATA", `C:\Users\ann\AppData\Roaming`),
			home: `C:\Users\ann`,
			want: Paths{`C:\Users\ann\AppData\Local\Herald`, `C:\Users\ann\AppData\Local\Herald\herald.sock`, `C:\Users\ann\AppData\Roaming\Herald\herald.toml`},
		},
		{
			name: "windows user without variables",
			goos: "windows", user: true,
			env:  env(),
			home: `C:\Users\ann`,
			want: Paths{`C:\Users\ann\AppData\Local\Herald`, `C:\Users\ann\AppData\Local\Herald\herald.sock`, `C:\Users\ann\AppData\Roaming\Herald\herald.toml`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.goos != "windows" && runtime.GOOS == "windows" {
				t.Skip("Unix layouts are joined with the host separator")
			}
			got := defaultPaths(tt.goos, tt.user, tt.env, tt.home)
			if got != tt.want {
				t.Errorf("defaultPaths(%s, user=%v) =\n%+v\nwant\n%+v", tt.goos, tt.user, got, tt.want)
			}
		})
	}
}

func TestDefaultPathsUsesEnvironment(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("XDG layout is Linux's")
	}
	dir := t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(dir, "run"))
	got := DefaultPaths(true)
	want := Paths{
		DataDir:    filepath.Join(dir, "data", "herald"),
		Socket:     filepath.Join(dir, "run", "herald", "herald.sock"),
		ConfigFile: filepath.Join(dir, "config", "herald", "herald.toml"),
	}
	if got != want {
		t.Errorf("DefaultPaths(true) = %+v, want %+v", got, want)
	}
	if sys := DefaultPaths(false); sys.DataDir != "/var/lib/herald" {
		t.Errorf("DefaultPaths(false).DataDir = %q, want /var/lib/herald whoever runs it", sys.DataDir)
	}
}

func TestEnsureDir(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix modes")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	existing := filepath.Join(dir, "existing")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		path     string
		mode     os.FileMode
		wantMode os.FileMode
		wantErr  error
	}{
		{"creates nested with exact mode", filepath.Join(dir, "a", "b", "c"), 0o700, 0o700, nil},
		{"mode not reduced by umask", filepath.Join(dir, "shared"), 0o770, 0o770, nil},
		{"existing directory left alone", existing, 0o700, 0o755, nil},
		{"file in the way", file, 0o700, 0, ErrNotDirectory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := EnsureDir(tt.path, tt.mode)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("EnsureDir(%s) = %v, want %v", tt.path, err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			fi, err := os.Stat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.IsDir() || fi.Mode().Perm() != tt.wantMode {
				t.Errorf("%s: mode %v dir=%v, want %v", tt.path, fi.Mode().Perm(), fi.IsDir(), tt.wantMode)
			}
		})
	}
}
