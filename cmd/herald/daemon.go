package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/cli"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/ui"
)

// DefaultEmbeddedListen is where the embedded notification service listens.
// It is fixed rather than random so that channel URIs stay the same across
// restarts of the daemon.
const DefaultEmbeddedListen = "127.0.0.1:8790"

// settings is the daemon's effective configuration: defaults, then the
// config file, then the environment, then flags.
type settings struct {
	platform.Config
	ConfigFile  string `toml:"-"`
	Listen      string `toml:"listen"`
	ServiceName string `toml:"-"`
	// MemoryLimit is the Go runtime's soft memory limit in bytes; 0 leaves
	// the runtime's own (GOMEMLIMIT, or none).
	MemoryLimit int64 `toml:"memory_limit"`
}

// DefaultMemoryLimit keeps the daemon under 20 MB resident after a burst
// of notifications: idle it holds about 3 MB of Go memory and 12 MB of
// mapped binary and database, and without a limit the heap doubles past
// its live size before the collector runs. Below about 8 MiB the
// collector runs so often that a burst costs twice the CPU.
const DefaultMemoryLimit = 10 << 20

func userMode() bool { return os.Geteuid() != 0 }

// loadSettings parses the daemon's flags and resolves the configuration.
func loadSettings(name string, args []string, stderr io.Writer) (settings, *flag.FlagSet, error) {
	paths := platform.DefaultPaths(userMode())
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", paths.ConfigFile, "configuration file (TOML)")
	service := fs.String("service", "", "notification service URL, or several comma-separated (a cluster's nodes) (default: start an embedded one)")
	data := fs.String("data", "", "data directory (default "+paths.DataDir+")")
	socket := fs.String("socket", "", "local API socket (default "+paths.Socket+")")
	listen := fs.String("listen", DefaultEmbeddedListen, "address of the embedded notification service")
	socketGroup := fs.String("socket-group", "", "group allowed to use the local API socket (default: owner only)")
	display := fs.String("display", "", "toast display: auto, log, dbus, macos, windows")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	serviceName := fs.String("name", DefaultServiceName, "OS service name (when run by the service manager)")
	uiAddr := fs.String("ui", "", "serve the start-screen page and /metrics on this address, e.g. 127.0.0.1:8791 (env HERALD_UI)")
	memLimit := fs.String("memory-limit", "", "soft limit on the daemon's Go memory, e.g. 16MiB, or off (default 10MiB unless GOMEMLIMIT is set)")
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return settings{}, fs, err
	}
	if len(pos) > 0 {
		return settings{}, fs, fmt.Errorf("unexpected argument %q", pos[0])
	}
	cfg, err := platform.LoadConfig(*configFile)
	if err != nil {
		return settings{}, fs, err
	}
	cfg.ApplyEnv(os.LookupEnv)
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	override := func(flagName string, dst *string, v string) {
		if set[flagName] {
			*dst = v
		}
	}
	override("service", &cfg.Service, *service)
	override("data", &cfg.Data, *data)
	override("socket", &cfg.Socket, *socket)
	override("socket-group", &cfg.SocketGroup, *socketGroup)
	override("display", &cfg.Display, *display)
	override("log-level", &cfg.LogLevel, *logLevel)
	override("ui", &cfg.UI, *uiAddr)
	cfg.ApplyDefaults(paths)
	limit, err := memoryLimit(*memLimit, os.LookupEnv)
	if err != nil {
		return settings{}, fs, err
	}
	return settings{Config: cfg, ConfigFile: *configFile, Listen: *listen, ServiceName: *serviceName, MemoryLimit: limit}, fs, nil
}

// memoryLimit resolves --memory-limit: a size with an optional KiB, MiB or
// GiB suffix, "off" for none, or "" for the default unless GOMEMLIMIT
// already sets one.
func memoryLimit(flagValue string, env func(string) (string, bool)) (int64, error) {
	v := strings.TrimSpace(flagValue)
	if v == "" {
		if _, ok := env("GOMEMLIMIT"); ok {
			return 0, nil
		}
		return DefaultMemoryLimit, nil
	}
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
		return 0, fmt.Errorf("--memory-limit %q: want a size such as 16MiB, or off", flagValue)
	}
	return n * mult, nil
}

func printConfig(args []string, stdout, stderr io.Writer) int {
	s, _, err := loadSettings("config", args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "herald config: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "# effective configuration (file: %s)\n", s.ConfigFile)
	if err := toml.NewEncoder(stdout).Encode(s); err != nil {
		fmt.Fprintf(stderr, "herald config: %v\n", err)
		return 1
	}
	return 0
}

func runDaemon(args []string, stdout, stderr io.Writer) int {
	s, _, err := loadSettings("run", args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "herald run: %v\n", err)
		return 2
	}
	level, err := platform.ParseLogLevel(s.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "herald run: %v\n", err)
		return 2
	}
	log := cli.Logger(stderr, level)
	if s.MemoryLimit > 0 {
		debug.SetMemoryLimit(s.MemoryLimit)
	}
	display, err := platform.NewDisplay(s.Display, log)
	if err != nil {
		fmt.Fprintf(stderr, "herald run: %v\n", err)
		return 2
	}
	powerSource := platform.PowerSource{}.Level
	if s.Power != "auto" {
		level, err := platform.ParsePowerLevel(s.Power)
		if err != nil {
			fmt.Fprintf(stderr, "herald run: %v\n", err)
			return 2
		}
		powerSource = func() (platform.PowerLevel, error) { return level, nil }
	}
	// Run goes through the service wrapper in a terminal too: it stops the
	// daemon through ctx on SIGINT or SIGTERM, or when the service manager
	// asks.
	svc, err := platform.NewService(platform.ServiceOptions{Name: s.ServiceName, User: userMode()}, func(ctx context.Context) error {
		return serveDaemon(ctx, s, log, display, powerSource, stdout)
	})
	if err != nil {
		fmt.Fprintf(stderr, "herald run: %v\n", err)
		return 2
	}
	if err := svc.Run(); err != nil {
		fmt.Fprintf(stderr, "herald run: %v\n", err)
		return 1
	}
	return 0
}

// serveDaemon runs the daemon (and the embedded notification service when
// no other is configured) until ctx ends.
func serveDaemon(ctx context.Context, s settings, log *slog.Logger, display daemon.ToastDisplay,
	powerSource func() (platform.PowerLevel, error), stdout io.Writer) error {
	// The daemon creates its own state directory, owner-only, whatever
	// the service manager prepared.
	if err := platform.EnsureDir(s.Data, 0o700); err != nil {
		return err
	}
	serviceURL := s.Service
	if serviceURL == "" {
		svc, err := server.Start(ctx, server.ServeConfig{Listen: s.Listen, DB: filepath.Join(s.Data, "heraldsvc.db"),
			Server: server.Config{Logger: log.With("part", "service")}})
		if err != nil {
			return fmt.Errorf("embedded notification service: %w", err)
		}
		defer svc.Close()
		serviceURL = svc.URL()
	}
	phone := &ui.Single{}
	page := ui.New(ui.Config{Phones: phone, Logger: log.With("part", "ui")})
	d, err := daemon.New(daemon.Config{Service: serviceURL, DataDir: s.Data, Socket: s.Socket, SocketGroup: s.SocketGroup,
		Display: display, Logger: log, PowerSource: powerSource, Handlers: s.Handlers,
		OnChange: func(c daemon.Change) { page.Notify("", c) }})
	if err != nil {
		return err
	}
	defer d.Close()
	phone.D = d
	if s.UI != "" {
		url, stopUI, err := startUI(ctx, s.UI, page.Handler(), log)
		if err != nil {
			return err
		}
		defer stopUI()
		fmt.Fprintf(stdout, "herald: start screen %s\n", url)
	}

	fmt.Fprintf(stdout, "herald: notification service %s\nherald: local API socket %s\n", serviceURL, s.Socket)
	if s.Service == "" {
		fmt.Fprintf(stdout, `
Send a first toast (in another terminal; add --socket %[1]s if it is not the default):
  URI=$(herald open demo --toast)
  curl -H 'X-WindowsPhone-Target: toast' -H 'X-NotificationClass: 2' -H 'Content-Type: text/xml' \
    --data '<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>Hello</wp:Text1><wp:Text2>from Herald</wp:Text2></wp:Toast></wp:Notification>' \
    -i "$URI"
  herald toasts

`, s.Socket)
	}
	return d.Run(ctx)
}
