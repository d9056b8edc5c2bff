package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "herald.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const exampleConfig = `# every key
service = "https://push.example.net"
data = "/srv/herald"
socket = "/run/herald/api.sock"
socket_group = "herald"
ui = "127.0.0.1:8790"
display = "dbus"
power = "low"
log_level = "debug"

[handlers.weather]
command = ["/usr/local/bin/weather-sync", "--quiet"]
timeout = "10s"

[handlers."com.example.chat"]
command = ["chat-bg"]
`

func TestLoadConfig(t *testing.T) {
	path := writeConfig(t, exampleConfig)
	got, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	want := Config{
		Service:     "https://push.example.net",
		Data:        "/srv/herald",
		Socket:      "/run/herald/api.sock",
		SocketGroup: "herald",
		UI:          "127.0.0.1:8790",
		Display:     "dbus",
		Power:       "low",
		LogLevel:    "debug",
		Handlers: map[string]Handler{
			"weather":          {Command: []string{"/usr/local/bin/weather-sync", "--quiet"}, Timeout: Duration{10 * time.Second}},
			"com.example.chat": {Command: []string{"chat-bg"}, Timeout: Duration{DefaultHandlerTimeout}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("LoadConfig =\n%+v\nwant\n%+v", got, want)
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	got, err := LoadConfig(filepath.Join(t.TempDir(), "nope.toml"))
	if err != nil {
		t.Fatalf("LoadConfig of a missing file: %v", err)
	}
	if !reflect.DeepEqual(got, Config{}) {
		t.Errorf("LoadConfig of a missing file = %+v, want zero", got)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr error
		want    []string // substrings of the message, after the file name
	}{
		{
			name:    "unknown top-level key",
			body:    "service = \"\"\n\nlog_levl = \"debug\"\n",
			wantErr: ErrUnknownKey,
			want:    []string{":3: unknown key \"log_levl\""},
		},
		{
			name:    "unknown key in handler",
			body:    "[handlers.app]\ncommand = [\"x\"]\n# comment\ntimout = \"5s\"\n",
			wantErr: ErrUnknownKey,
			want:    []string{":4: unknown key \"handlers.app.timout\""},
		},
		{
			name:    "history and limits out of range",
			body:    "listen = \"8790\"\nmemory_limit = \"lots\"\ntoasts_kept = -1\nevents_kept = 2000000\nevents_max_age = \"-1h\"\n",
			wantErr: ErrInvalidConfig,
			want: []string{":1: invalid configuration: listen \"8790\"", ":2: invalid configuration: memory_limit", ":3: invalid configuration: toasts_kept -1",
				":4: invalid configuration: events_kept 2000000", ":5: invalid configuration: events_max_age -1h0m0s"},
		},
		{
			name:    "heartbeat ceilings out of range",
			body:    "display = \"log\"\nheartbeat_ceiling = \"30s\"\nmetered_heartbeat_ceiling = \"48h\"\n",
			wantErr: ErrInvalidConfig,
			want:    []string{":2: invalid configuration: heartbeat_ceiling 30s: want 1m0s to 24h0m0s", ":3: invalid configuration: metered_heartbeat_ceiling 48h0m0s"},
		},
		{
			name:    "unknown table reported once",
			body:    "display = \"log\"\n[extra]\na = 1\nb = 2\n",
			wantErr: ErrUnknownKey,
			want:    []string{":2: unknown key \"extra\""},
		},
		{
			name:    "unknown dotted key",
			body:    "handlers.app.command = [\"x\"]\nhandlers.app.env = \"A=1\"\n",
			wantErr: ErrUnknownKey,
			want:    []string{":2: unknown key \"handlers.app.env\""},
		},
		{
			name:    "unknown key in inline table points at the table",
			body:    "\nhandlers = { app = { command = [\"x\"], retries = 3 } }\n",
			wantErr: ErrUnknownKey,
			want:    []string{":2: unknown key \"handlers.app.retries\""},
		},
		{
			name:    "unknown key after multi-line string",
			body:    "service = \"\"\"\nnot = \"a key\"\n\"\"\"\nnot = 1\n",
			wantErr: ErrUnknownKey,
			want:    []string{":4: unknown key \"not\""},
		},
		{
			name:    "bad display",
			body:    "display = \"x11\"\n",
			wantErr: ErrInvalidConfig,
			want:    []string{":1:", `display "x11"`},
		},
		{
			name:    "bad power",
			body:    "\npower = \"empty\"\n",
			wantErr: ErrInvalidConfig,
			want:    []string{":2:", `power "empty"`},
		},
		{
			name:    "bad log level",
			body:    "log_level = \"trace\"\n",
			wantErr: ErrInvalidConfig,
			want:    []string{`log_level "trace"`},
		},
		{
			name:    "relative service URL",
			body:    "service = \"localhost\"\n",
			wantErr: ErrInvalidConfig,
			want:    []string{`service "localhost"`},
		},
		{
			name:    "ui without port",
			body:    "ui = \"127.0.0.1\"\n",
			wantErr: ErrInvalidConfig,
			want:    []string{`ui "127.0.0.1"`},
		},
		{
			name:    "ui host with a scheme",
			body:    "ui_hosts = [\"herald.test\", \"http://evil.example\"]\n",
			wantErr: ErrInvalidConfig,
			want:    []string{`ui host "http://evil.example"`},
		},
		{
			name:    "handler without command",
			body:    "[handlers.app]\ntimeout = \"1s\"\n",
			wantErr: ErrInvalidConfig,
			want:    []string{":1:", `handler "app": command`},
		},
		{
			name:    "handler with empty program",
			body:    "[handlers.app]\ncommand = [\"\"]\n",
			wantErr: ErrInvalidConfig,
			want:    []string{`handler "app": command`},
		},
		{
			name:    "zero timeout",
			body:    "[handlers.app]\ncommand = [\"x\"]\ntimeout = \"0s\"\n",
			wantErr: ErrInvalidConfig,
			want:    []string{":3:", `handler "app": timeout 0s must be positive`},
		},
		{
			name:    "negative timeout",
			body:    "[handlers.app]\ncommand = [\"x\"]\ntimeout = \"-1s\"\n",
			wantErr: ErrInvalidConfig,
			want:    []string{`timeout -1s must be positive`},
		},
		{
			name: "unparsable timeout",
			body: "[handlers.app]\ncommand = [\"x\"]\ntimeout = \"soon\"\n",
			want: []string{"line 3", "soon"},
		},
		{
			name: "wrong type",
			body: "display = 3\n",
			want: []string{"display"},
		},
		{
			name: "syntax error",
			body: "display = \n",
			want: []string{"line 1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.body)
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatal("LoadConfig succeeded, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("LoadConfig error %v, want %v", err, tt.wantErr)
			}
			msg := err.Error()
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	path := writeConfig(t, "displya = \"log\"\npower = \"max\"\n")
	_, err := LoadConfig(path)
	if !errors.Is(err, ErrUnknownKey) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("LoadConfig = %v, want both an unknown key and an invalid value", err)
	}
}

func TestDurationText(t *testing.T) {
	var c struct {
		T Duration `toml:"t"`
	}
	if _, err := toml.Decode(`t = "1m30s"`, &c); err != nil {
		t.Fatal(err)
	}
	if c.T.Duration != 90*time.Second {
		t.Fatalf("decoded %v, want 1m30s", c.T)
	}
	var b strings.Builder
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(b.String()); got != `t = "1m30s"` {
		t.Errorf("encoded %q", got)
	}
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Config
	}{
		{"nothing set", nil, Config{Service: "http://file", Data: "/file", Socket: "/file.sock", UI: ":1"}},
		{
			"all set",
			map[string]string{EnvService: "http://env", EnvData: "/env", EnvSocket: "/env.sock", EnvUI: ":2"},
			Config{Service: "http://env", Data: "/env", Socket: "/env.sock", UI: ":2"},
		},
		{"empty service selects the embedded one", map[string]string{EnvService: ""}, Config{Data: "/file", Socket: "/file.sock", UI: ":1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Service: "http://file", Data: "/file", Socket: "/file.sock", UI: ":1"}
			c.ApplyEnv(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if !reflect.DeepEqual(c, tt.want) {
				t.Errorf("ApplyEnv = %+v, want %+v", c, tt.want)
			}
		})
	}
}

func TestApplyDefaults(t *testing.T) {
	p := Paths{DataDir: "/d", Socket: "/s", ConfigFile: "/c"}
	var c Config
	c.ApplyDefaults(p)
	want := Config{Data: "/d", Socket: "/s", Listen: DefaultListen, Display: "auto", Power: "auto", LogLevel: "info", UIHosts: []string{},
		ToastsKept: DefaultToastsKept, ToastsMaxAge: Duration{DefaultToastsMaxAge},
		EventsKept: DefaultEventsKept, EventsMaxAge: Duration{DefaultEventsMaxAge},
		HeartbeatCeiling: Duration{DefaultHeartbeatCeiling}, MeteredHeartbeatCeiling: Duration{DefaultMeteredHeartbeatCeiling}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("ApplyDefaults on zero = %+v, want %+v", c, want)
	}
	set := Config{Data: "/x", Socket: "/y", Listen: ":1", Display: "log", Power: "low", LogLevel: "warn", UIHosts: []string{"h"},
		ToastsKept: 3, ToastsMaxAge: Duration{time.Hour}, EventsKept: 4, EventsMaxAge: Duration{time.Minute},
		HeartbeatCeiling: Duration{time.Hour}, MeteredHeartbeatCeiling: Duration{10 * time.Minute}}
	got := set
	got.ApplyDefaults(p)
	if !reflect.DeepEqual(got, set) {
		t.Errorf("ApplyDefaults changed set fields: %+v", got)
	}
}

func TestParseLogLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    slog.Level
		wantErr error
	}{
		{"", slog.LevelInfo, nil},
		{"debug", slog.LevelDebug, nil},
		{"info", slog.LevelInfo, nil},
		{"warn", slog.LevelWarn, nil},
		{"error", slog.LevelError, nil},
		{"verbose", 0, ErrInvalidLogLevel},
	}
	for _, tt := range tests {
		got, err := ParseLogLevel(tt.in)
		if !errors.Is(err, tt.wantErr) || got != tt.want {
			t.Errorf("ParseLogLevel(%q) = %v, %v; want %v, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSplitKey(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"a", []string{"a"}, true},
		{"a.b.c", []string{"a", "b", "c"}, true},
		{` a . b `, []string{"a", "b"}, true},
		{`handlers."com.example".timeout`, []string{"handlers", "com.example", "timeout"}, true},
		{`'lit.eral'.x`, []string{"lit.eral", "x"}, true},
		{`"q\"uote"`, []string{`q"uote`}, true},
		{`"unterminated`, nil, false},
		{`a b`, nil, false},
	}
	for _, tt := range tests {
		got, ok := splitKey(tt.in)
		if ok != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitKey(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// The configuration guide's example must load, and the guide must describe
// every key.
func TestConfigurationDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "configuration.md"))
	if err != nil {
		t.Fatalf("read the configuration guide: %v", err)
	}
	_, rest, ok := strings.Cut(string(doc), "```toml\n")
	if !ok {
		t.Fatal("the guide has no ```toml example")
	}
	example, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("unterminated ```toml example")
	}
	cfg, err := LoadConfig(writeConfig(t, example))
	if err != nil {
		t.Fatalf("the guide's example does not load: %v", err)
	}
	if len(cfg.Handlers) == 0 {
		t.Error("the guide's example shows no handler")
	}
	var keys []string
	for _, typ := range []reflect.Type{reflect.TypeFor[Config](), reflect.TypeFor[Handler]()} {
		for f := range typ.Fields() {
			keys = append(keys, f.Tag.Get("toml"))
		}
	}
	for _, k := range keys {
		described := strings.Contains(string(doc), "`"+k+"`") ||
			strings.Contains(string(doc), "`"+k+".<app>`") ||
			strings.Contains(string(doc), "`handlers.<app>."+k+"`")
		if !described {
			t.Errorf("the guide does not describe key %q", k)
		}
	}
	for _, s := range []string{fmt.Sprintf("%d %%", LowBatteryPercent), fmt.Sprintf("%d %%", CriticalBatteryPercent)} {
		if !strings.Contains(string(doc), s) {
			t.Errorf("the guide does not state the power threshold %q", s)
		}
	}
}
