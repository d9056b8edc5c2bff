package platform

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Environment variables that override the configuration file (and are
// overridden by command-line flags).
const (
	EnvService = "HERALD_SERVICE"
	EnvData    = "HERALD_DATA"
	EnvSocket  = "HERALD_SOCKET"
	EnvUI      = "HERALD_UI"
)

// DefaultHandlerTimeout is how long a background handler may run when its
// configuration gives no timeout.
const DefaultHandlerTimeout = 30 * time.Second

var (
	// ErrUnknownKey is returned by LoadConfig for a key the daemon does not
	// know; the error names the key and its line.
	ErrUnknownKey = errors.New("unknown key")
	// ErrInvalidConfig is returned by LoadConfig for a known key with a value
	// the daemon cannot use.
	ErrInvalidConfig = errors.New("invalid configuration")
	// ErrInvalidLogLevel is returned by ParseLogLevel.
	ErrInvalidLogLevel = errors.New("invalid log level")
)

// Config is the daemon's configuration file (TOML). The zero value is a
// valid configuration: every empty field means "the default".
type Config struct {
	Service     string             `toml:"service"`      // notification service URL; "" = start the embedded one on loopback
	Data        string             `toml:"data"`         // data directory; "" = DefaultPaths
	Socket      string             `toml:"socket"`       // local API socket; "" = DefaultPaths
	SocketGroup string             `toml:"socket_group"` // group allowed to use the local API socket (mode 0660); "" = owner only (0600)
	UI          string             `toml:"ui"`           // address of the start-screen UI, e.g. 127.0.0.1:8790; "" = off
	UIHosts     []string           `toml:"ui_hosts"`     // host names the UI also answers to ("name" or "name:port"); the listen address and localhost always
	Display     string             `toml:"display"`      // toast display backend: auto|log|dbus|macos|windows
	Power       string             `toml:"power"`        // auto (from the OS) | normal | low | critical
	LogLevel    string             `toml:"log_level"`    // debug|info|warn|error
	Handlers    map[string]Handler `toml:"handlers"`     // app id → background handler for raw notifications while the app is not running
}

// Handler is a background handler: a command run for a raw notification
// that arrives while its app is not running.
type Handler struct {
	Command []string `toml:"command"` // argv; payload on stdin; HERALD_APP and HERALD_MESSAGE_ID in the environment
	Timeout Duration `toml:"timeout"` // e.g. "10s"; LoadConfig fills in DefaultHandlerTimeout when omitted
}

// Duration is a time.Duration written in TOML as a string such as "10s" or
// "1m30s".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// The accepted values of the enumerated keys; "" always means the default.
var (
	DisplayNames = []string{"auto", "log", "dbus", "macos", "windows"}
	PowerModes   = []string{"auto", "normal", "low", "critical"}
	LogLevels    = []string{"debug", "info", "warn", "error"}
)

// LoadConfig reads the configuration file at path. A missing file is not an
// error: it returns the zero Config. Unknown keys are an error naming the
// key and its line, so a misspelt key is not silently ignored. LoadConfig
// validates display, power and log_level, the service URL and UI address,
// and that every handler has a command and a positive timeout.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	return parseConfig(path, data)
}

func parseConfig(path string, data []byte) (Config, error) {
	var c Config
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&c)
	if err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	lines := newKeyLines(data)
	var errs []error
	for _, k := range topUndecoded(md.Undecoded()) {
		errs = append(errs, fmt.Errorf("%s: %w %q", lines.where(path, k), ErrUnknownKey, k.String()))
	}
	invalid := func(msg string, key ...string) {
		errs = append(errs, fmt.Errorf("%s: %w: %s", lines.where(path, key), ErrInvalidConfig, msg))
	}
	oneOf := func(key, v string, allowed []string) {
		if v != "" && !slices.Contains(allowed, v) {
			invalid(fmt.Sprintf("%s %q: want one of %s", key, v, strings.Join(allowed, ", ")), key)
		}
	}
	oneOf("display", c.Display, DisplayNames)
	oneOf("power", c.Power, PowerModes)
	oneOf("log_level", c.LogLevel, LogLevels)
	if c.Service != "" {
		if u, err := url.Parse(c.Service); err != nil || u.Scheme == "" || u.Host == "" {
			invalid(fmt.Sprintf("service %q: want an absolute URL such as http://127.0.0.1:8080", c.Service), "service")
		}
	}
	if c.UI != "" {
		if _, _, err := net.SplitHostPort(c.UI); err != nil {
			invalid(fmt.Sprintf("ui %q: want host:port such as 127.0.0.1:8790", c.UI), "ui")
		}
	}
	for _, h := range c.UIHosts {
		if err := ValidUIHost(h); err != nil {
			invalid(err.Error(), "ui_hosts")
		}
	}
	apps := make([]string, 0, len(c.Handlers))
	for app := range c.Handlers {
		apps = append(apps, app)
	}
	slices.Sort(apps)
	for _, app := range apps {
		h := c.Handlers[app]
		if len(h.Command) == 0 || h.Command[0] == "" {
			invalid(fmt.Sprintf("handler %q: command must name a program", app), "handlers", app)
		}
		switch {
		case !md.IsDefined("handlers", app, "timeout"):
			h.Timeout.Duration = DefaultHandlerTimeout
		case h.Timeout.Duration <= 0:
			invalid(fmt.Sprintf("handler %q: timeout %s must be positive", app, h.Timeout), "handlers", app, "timeout")
		}
		c.Handlers[app] = h
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("load config: %w", errors.Join(errs...))
	}
	return c, nil
}

// topUndecoded drops keys whose parent table is itself unknown, so a
// misspelt table is reported once rather than once per key inside it.
func topUndecoded(keys []toml.Key) []toml.Key {
	var out []toml.Key
	for _, k := range keys {
		if !slices.ContainsFunc(out, func(p toml.Key) bool {
			return len(p) < len(k) && slices.Equal(p, k[:len(p)])
		}) {
			out = append(out, k)
		}
	}
	return out
}

// ApplyEnv overrides the keys that have an environment variable
// (HERALD_SERVICE, HERALD_DATA, HERALD_SOCKET, HERALD_UI) with the variables
// that lookup reports as set, even to the empty string, which selects the
// default (for HERALD_SERVICE: the embedded service). Pass os.LookupEnv.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) {
	for _, e := range []struct {
		name string
		dst  *string
	}{
		{EnvService, &c.Service},
		{EnvData, &c.Data},
		{EnvSocket, &c.Socket},
		{EnvUI, &c.UI},
	} {
		if v, ok := lookup(e.name); ok {
			*e.dst = v
		}
	}
}

// ApplyDefaults fills the empty fields that have a default: Data and Socket
// from p, Display and Power "auto", LogLevel "info". Service, UI and
// SocketGroup stay empty, since empty is their default.
func (c *Config) ApplyDefaults(p Paths) {
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&c.Data, p.DataDir)
	fill(&c.Socket, p.Socket)
	fill(&c.Display, "auto")
	fill(&c.Power, "auto")
	fill(&c.LogLevel, "info")
}

// ParseLogLevel maps a log_level value to a slog.Level; "" is info.
func ParseLogLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%w %q: want one of %s", ErrInvalidLogLevel, s, strings.Join(LogLevels, ", "))
}

// keyLines maps each key written in a TOML document to its line, for error
// messages. The decoder knows these positions but does not export them; this
// small scanner understands table headers, dotted and quoted keys and
// skips multi-line strings, which is all a configuration file needs. A key
// inside an inline table is attributed to the line of the table.
type keyLines map[string]int

func newKeyLines(data []byte) keyLines {
	kl := keyLines{}
	var table []string
	inMulti := "" // the delimiter of the multi-line string being skipped
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if inMulti != "" {
			if strings.Count(line, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			hdr := strings.TrimPrefix(strings.TrimPrefix(line, "["), "[")
			end := strings.Index(hdr, "]")
			if end < 0 {
				continue
			}
			if k, ok := splitKey(hdr[:end]); ok {
				table = k
				kl.add(table, n)
			}
			continue
		}
		eq := keyEnd(line)
		if eq < 0 {
			continue
		}
		k, ok := splitKey(line[:eq])
		if !ok {
			continue
		}
		kl.add(append(slices.Clone(table), k...), n)
		for _, d := range []string{`"""`, `'''`} {
			if strings.Count(line[eq:], d)%2 == 1 {
				inMulti = d
			}
		}
	}
	return kl
}

func (kl keyLines) add(k []string, line int) {
	s := toml.Key(k).String()
	if _, ok := kl[s]; !ok {
		kl[s] = line
	}
}

// where returns "path:line" for key, or for its nearest enclosing key that
// has a line, or just path.
func (kl keyLines) where(path string, key []string) string {
	for i := len(key); i > 0; i-- {
		if n, ok := kl[toml.Key(key[:i]).String()]; ok {
			return fmt.Sprintf("%s:%d", path, n)
		}
	}
	return path
}

// keyEnd returns the index of the '=' that ends the key at the start of
// line, ignoring '=' inside quoted key parts, or -1.
func keyEnd(line string) int {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '=':
			return i
		}
	}
	return -1
}

// splitKey splits a dotted TOML key such as `a."b.c".d` into its parts.
func splitKey(s string) ([]string, bool) {
	var parts []string
	s = strings.TrimSpace(s)
	for s != "" {
		var part string
		if q := s[0]; q == '"' || q == '\'' {
			end := closingQuote(s, q)
			if end < 0 {
				return nil, false
			}
			part = s[1:end]
			if q == '"' {
				uq, err := unquoteBasic(s[:end+1])
				if err != nil {
					return nil, false
				}
				part = uq
			}
			s = s[end+1:]
		} else {
			end := strings.IndexAny(s, ". \t")
			if end < 0 {
				end = len(s)
			}
			part, s = s[:end], s[end:]
		}
		parts = append(parts, part)
		s = strings.TrimSpace(s)
		if s == "" {
			break
		}
		if s[0] != '.' {
			return nil, false
		}
		s = strings.TrimSpace(s[1:])
	}
	return parts, len(parts) > 0
}

// closingQuote returns the index of the quote closing the string that opens
// at s[0], honouring backslash escapes in basic strings, or -1.
func closingQuote(s string, q byte) int {
	for i := 1; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case s[i] == q:
			return i
		}
	}
	return -1
}

// unquoteBasic decodes a TOML basic string key, which uses the same escapes
// as TOML basic strings.
func unquoteBasic(s string) (string, error) {
	var v struct{ K string }
	if _, err := toml.Decode("K = "+s, &v); err != nil {
		return "", err
	}
	return v.K, nil
}

// ValidUIHost checks a host name the start-screen UI may be reached by
// (--ui-host, ui_hosts): a name or address, with an optional port; no
// scheme or path.
func ValidUIHost(s string) error {
	if s == "" || len(s) > 255 || strings.ContainsAny(s, "/?#@ \t\\") {
		return fmt.Errorf("ui host %q: want a host name such as herald.example or herald.example:8791", s)
	}
	if name, port, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || name == "" {
			return fmt.Errorf("ui host %q: bad port", s)
		}
	}
	return nil
}
