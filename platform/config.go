package platform

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
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
// ApplyDefaults fills the defaults in, and `herald config` prints the result,
// which loads back unchanged.
type Config struct {
	Service     string   `toml:"service"`      // notification service URL; "" = start the embedded one on loopback
	Insecure    bool     `toml:"insecure"`     // allow a plain http:// service that is not on loopback
	ServiceCA   string   `toml:"service_ca"`   // PEM CA bundle the https service's certificate must chain to; "" = the system's roots
	ServicePin  string   `toml:"service_pin"`  // SHA-256 (hex or base64) of the service's certificate or public key, or of one in its chain
	Listen      string   `toml:"listen"`       // the embedded service's address (when service is ""); "" = DefaultListen
	TLS         bool     `toml:"tls"`          // the embedded service speaks https, with a development CA kept in the data directory's tls/
	Data        string   `toml:"data"`         // data directory; "" = DefaultPaths
	Socket      string   `toml:"socket"`       // local API socket; "" = DefaultPaths
	SocketGroup string   `toml:"socket_group"` // group allowed to use the local API socket (mode 0660); "" = owner only (0600)
	UI          string   `toml:"ui"`           // address of the start-screen UI, e.g. 127.0.0.1:8791; "" = off
	UIHosts     []string `toml:"ui_hosts"`     // host names the UI also answers to ("name" or "name:port"); the listen address and localhost always
	Display     string   `toml:"display"`      // toast display backend: auto|log|dbus|macos|windows
	Power       string   `toml:"power"`        // auto (from the OS) | normal | low | critical
	LogLevel    string   `toml:"log_level"`    // debug|info|warn|error
	MemoryLimit string   `toml:"memory_limit"` // Go's soft memory limit, e.g. "10MiB", or "off"; see ParseSize
	UnifiedPush string   `toml:"unifiedpush"`  // the D-Bus bus of the UnifiedPush distributor: session|system|off, or a bus address; "" = session for a user, system for root
	// The device database's bounded history (see the defaults' reasons).
	ToastsKept   int                `toml:"toasts_kept"`    // toasts kept per phone; 0 = DefaultToastsKept
	ToastsMaxAge Duration           `toml:"toasts_max_age"` // toasts older than this are deleted; 0 = DefaultToastsMaxAge
	EventsKept   int                `toml:"events_kept"`    // events kept per app for an app that does not take them; 0 = DefaultEventsKept
	EventsMaxAge Duration           `toml:"events_max_age"` // events older than this are deleted; 0 = DefaultEventsMaxAge
	Handlers     map[string]Handler `toml:"handlers"`       // app id → background handler for raw notifications while the app is not running
	// The heartbeat's ceilings (docs/power.md): the longest idle interval
	// the link may learn on a network, and on a metered or cellular one.
	HeartbeatCeiling        Duration `toml:"heartbeat_ceiling"`         // 0 = DefaultHeartbeatCeiling
	MeteredHeartbeatCeiling Duration `toml:"metered_heartbeat_ceiling"` // 0 = DefaultMeteredHeartbeatCeiling
}

// DefaultListen is where the embedded notification service listens. It is
// fixed rather than random so that channel URIs stay the same across
// restarts of the daemon.
const DefaultListen = "127.0.0.1:8790"

// The bounds of the device database's history, with their reasons.
const (
	// The toast history is what the start screen and `herald toasts`
	// show; a thousand rows are about 200 KiB, more than anyone scrolls.
	DefaultToastsKept = 1000
	// A month, like a phone's notification history.
	DefaultToastsMaxAge = 30 * 24 * time.Hour
	// Events wait for a running app that stopped taking them (it crashed
	// within its grace period, or its stream broke and it never came
	// back). The service queues at most 500 notifications per device by
	// default; one app's backlog on the phone need not be longer.
	DefaultEventsKept = 500
	// The service treats a device away for 72 hours as inactive and stops
	// queueing for it (412); an app away as long is treated the same.
	DefaultEventsMaxAge = 72 * time.Hour
)

// The heartbeat's ceilings, as channel.DefaultHeartbeatCeiling and
// channel.MeteredHeartbeatCeiling give their reasons, and their bounds: a
// minute is the service's least heartbeat, and past a day a silent NAT
// drop would hide a device for longer than a sender waits.
const (
	DefaultHeartbeatCeiling        = 118 * time.Minute
	DefaultMeteredHeartbeatCeiling = 28 * time.Minute
	MinHeartbeatCeiling            = time.Minute
	MaxHeartbeatCeiling            = 24 * time.Hour
)

// ValidHeartbeatCeiling checks a heartbeat ceiling's bounds (0 is the
// default).
func ValidHeartbeatCeiling(d time.Duration) error {
	if d != 0 && (d < MinHeartbeatCeiling || d > MaxHeartbeatCeiling) {
		return fmt.Errorf("%s: want %s to %s, or 0 for the default", d, MinHeartbeatCeiling, MaxHeartbeatCeiling)
	}
	return nil
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
	// UnifiedPushBuses are unifiedpush's named values; a D-Bus address
	// such as unix:path=/run/user/1000/bus is accepted too.
	UnifiedPushBuses = []string{"session", "system", "off"}
)

// ValidUnifiedPushBus reports whether v is a unifiedpush value: a named
// bus, or a D-Bus address (transport:key=value,...).
func ValidUnifiedPushBus(v string) bool {
	if slices.Contains(UnifiedPushBuses, v) {
		return true
	}
	transport, rest, ok := strings.Cut(v, ":")
	return ok && transport != "" && strings.Contains(rest, "=") && len(v) <= 1024
}

// LoadConfig reads the configuration file at path. A missing file is not an
// error: it returns the zero Config. Unknown keys are an error naming the
// key and its line, so a misspelt key is not silently ignored. LoadConfig
// validates display, power and log_level, the service URL and UI address,
// and that every handler has a command and a positive timeout.
func LoadConfig(path string) (Config, error) {
	data, err := ReadConfigFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, err
	}
	return parseConfig(path, data)
}

func parseConfig(path string, data []byte) (Config, error) {
	var c Config
	f, err := DecodeConfigFile(path, data, &c)
	if err != nil {
		return Config{}, err
	}
	invalid := f.Invalid
	oneOf := func(key, v string, allowed []string) {
		if v != "" && !slices.Contains(allowed, v) {
			invalid(fmt.Sprintf("%s %q: want one of %s", key, v, strings.Join(allowed, ", ")), key)
		}
	}
	oneOf("display", c.Display, DisplayNames)
	oneOf("power", c.Power, PowerModes)
	oneOf("log_level", c.LogLevel, LogLevels)
	if c.UnifiedPush != "" && !ValidUnifiedPushBus(c.UnifiedPush) {
		invalid(fmt.Sprintf("unifiedpush %q: want session, system, off or a D-Bus address such as unix:path=/run/user/1000/bus", c.UnifiedPush), "unifiedpush")
	}
	if c.Service != "" {
		if u, err := url.Parse(c.Service); err != nil || u.Scheme == "" || u.Host == "" {
			invalid(fmt.Sprintf("service %q: want an absolute URL such as http://127.0.0.1:8080", c.Service), "service")
		}
	}
	for _, a := range []struct{ key, v string }{{"ui", c.UI}, {"listen", c.Listen}} {
		if a.v != "" {
			if _, _, err := net.SplitHostPort(a.v); err != nil {
				invalid(fmt.Sprintf("%s %q: want host:port such as 127.0.0.1:8791", a.key, a.v), a.key)
			}
		}
	}
	if c.MemoryLimit != "" {
		if _, err := ParseSize(c.MemoryLimit); err != nil {
			invalid(fmt.Sprintf("memory_limit: %v", err), "memory_limit")
		}
	}
	for _, n := range []struct {
		key string
		v   int
	}{{"toasts_kept", c.ToastsKept}, {"events_kept", c.EventsKept}} {
		if n.v < 0 || n.v > MaxKept {
			invalid(fmt.Sprintf("%s %d: want 1-%d, or 0 for the default", n.key, n.v, MaxKept), n.key)
		}
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"toasts_max_age", c.ToastsMaxAge}, {"events_max_age", c.EventsMaxAge}} {
		if d.v.Duration < 0 {
			invalid(fmt.Sprintf("%s %s: must not be negative (0 for the default)", d.key, d.v), d.key)
		}
	}
	for _, d := range []struct {
		key string
		v   Duration
	}{{"heartbeat_ceiling", c.HeartbeatCeiling}, {"metered_heartbeat_ceiling", c.MeteredHeartbeatCeiling}} {
		if err := ValidHeartbeatCeiling(d.v.Duration); err != nil {
			invalid(fmt.Sprintf("%s %v", d.key, err), d.key)
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
		case !f.Meta.IsDefined("handlers", app, "timeout"):
			h.Timeout.Duration = DefaultHandlerTimeout
		case h.Timeout.Duration <= 0:
			invalid(fmt.Sprintf("handler %q: timeout %s must be positive", app, h.Timeout), "handlers", app, "timeout")
		}
		c.Handlers[app] = h
	}
	if err := f.Err(); err != nil {
		return Config{}, err
	}
	return c, nil
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
// from p, Listen, Display and Power "auto", LogLevel "info", and the
// history bounds. Service, UI and SocketGroup stay empty, since empty is
// their default; MemoryLimit is left to the caller, whose default depends
// on GOMEMLIMIT.
func (c *Config) ApplyDefaults(p Paths) {
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&c.Data, p.DataDir)
	fill(&c.Socket, p.Socket)
	fill(&c.Listen, DefaultListen)
	fill(&c.Display, "auto")
	fill(&c.Power, "auto")
	fill(&c.LogLevel, "info")
	if c.UIHosts == nil {
		// Printed as [] by `herald config`, so the key is there to edit.
		c.UIHosts = []string{}
	}
	if c.ToastsKept == 0 {
		c.ToastsKept = DefaultToastsKept
	}
	if c.ToastsMaxAge.Duration == 0 {
		c.ToastsMaxAge.Duration = DefaultToastsMaxAge
	}
	if c.EventsKept == 0 {
		c.EventsKept = DefaultEventsKept
	}
	if c.EventsMaxAge.Duration == 0 {
		c.EventsMaxAge.Duration = DefaultEventsMaxAge
	}
	if c.HeartbeatCeiling.Duration == 0 {
		c.HeartbeatCeiling.Duration = DefaultHeartbeatCeiling
	}
	if c.MeteredHeartbeatCeiling.Duration == 0 {
		c.MeteredHeartbeatCeiling.Duration = DefaultMeteredHeartbeatCeiling
	}
}

// MaxKept bounds toasts_kept and events_kept.
const MaxKept = 1_000_000

// ErrInvalidSize is returned by ParseSize.
var ErrInvalidSize = errors.New("invalid size")

// ParseSize parses a size in bytes with an optional KiB, MiB or GiB
// suffix, e.g. "16MiB"; "off" is 0.
func ParseSize(s string) (int64, error) {
	v := strings.TrimSpace(s)
	if v == "off" {
		return 0, nil
	}
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if rest, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%w %q: want a size such as 16MiB, or off", ErrInvalidSize, s)
	}
	return n * mult, nil
}

// FormatSize writes n the way ParseSize reads it, in the largest unit that
// divides it; 0 is "off".
func FormatSize(n int64) string {
	switch {
	case n <= 0:
		return "off"
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "GiB"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10)
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
