package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/internal/cli"
	"github.com/heraldpush/herald/internal/devtls"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/ui"
)

// DefaultEmbeddedListen is where the embedded notification service listens.
const DefaultEmbeddedListen = platform.DefaultListen

// DefaultEmulatorListen is where `herald emulate` starts its embedded
// service: not DefaultEmbeddedListen, so that an emulator and a phone
// run side by side.
const DefaultEmulatorListen = "127.0.0.1:8792"

// settings is the daemon's effective configuration: defaults, then the
// config file, then the environment, then flags.
type settings struct {
	platform.Config
	ConfigFile  string `toml:"-"`
	ServiceName string `toml:"-"`
	// MemoryLimitBytes is memory_limit resolved: the Go runtime's soft
	// memory limit in bytes; 0 leaves the runtime's own (GOMEMLIMIT, or
	// none).
	MemoryLimitBytes int64 `toml:"-"`
}

// DefaultMemoryLimit keeps the daemon under 20 MB resident after a burst
// of notifications: idle it holds about 3 MB of Go memory and 12 MB of
// mapped binary and database, and without a limit the heap doubles past
// its live size before the collector runs. Below about 8 MiB the
// collector runs so often that a burst costs twice the CPU.
const DefaultMemoryLimit = 10 << 20

func userMode() bool { return os.Geteuid() != 0 }

// loadSettings parses the daemon's flags and resolves the configuration.
func loadSettings(name string, args []string) (settings, *flag.FlagSet, error) {
	paths := platform.DefaultPaths(userMode())
	fs := cli.NewFlagSet("herald "+name, "herald "+name+" [--service URL] [--tls] [--data DIR] [--socket PATH] [--listen ADDR] [--ui ADDR] [--config FILE] [--memory-limit SIZE] [--display NAME] [--log-level LEVEL] [--socket-group GROUP] [--unifiedpush BUS] [--heartbeat-ceiling DURATION]")
	configFile := fs.String("config", paths.ConfigFile, "configuration file (TOML)")
	service := fs.String("service", "", "notification service URL, or several comma-separated (a cluster's nodes) (default: start an embedded one)")
	data := fs.String("data", "", "data directory (default "+paths.DataDir+")")
	socket := fs.String("socket", "", "local API socket (default "+paths.Socket+")")
	listen := fs.String("listen", "", "address of the embedded notification service (default "+DefaultEmbeddedListen+")")
	devTLS := fs.Bool("tls", false, "the embedded service speaks https on --listen, with a development CA and certificate kept in DATA/tls (prints how to trust the CA)")
	socketGroup := fs.String("socket-group", "", "group allowed to use the local API socket (default: owner only)")
	display := fs.String("display", "", "toast display: auto, log, dbus, macos, windows")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	serviceName := fs.String("name", DefaultServiceName, "OS service name (when run by the service manager)")
	uiAddr := fs.String("ui", "", "serve the start-screen page and /metrics on this address, e.g. 127.0.0.1:8791 (env HERALD_UI); the page opens with the address printed at start, key included (herald ui-url prints it again)")
	insecure := fs.Bool("insecure", false, "allow a plain http:// service that is not on loopback (device secret proofs and notifications travel unencrypted)")
	serviceCA := fs.String("service-ca", "", "PEM CA bundle the https service's certificate must chain to (default: the system's roots)")
	servicePin := fs.String("service-pin", "", "SHA-256 (hex or base64) of the service's certificate or public key, or of one in its chain")
	var uiHosts cli.Strings
	fs.Var(&uiHosts, "ui-host", "a host name the UI also answers to, e.g. herald.home.arpa or herald.home.arpa:8791 (repeatable; adds to ui_hosts)")
	unifiedPush := fs.String("unifiedpush", "", "D-Bus bus of the UnifiedPush distributor: session, system, off, or a bus address (default session, or system as root)")
	hbCeiling := fs.Duration("heartbeat-ceiling", 0, "the longest heartbeat interval learned on a network, 1m to 24h (default 1h58m; metered networks keep metered_heartbeat_ceiling, default 28m)")
	memLimit := fs.String("memory-limit", "", "soft limit on the daemon's Go memory, e.g. 16MiB, or off (default 10MiB unless GOMEMLIMIT is set)")
	pos, err := cli.Parse(fs, args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		err = fmt.Errorf("%w\nusage: %s", err, cli.Usage(fs))
	}
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
	override("service-ca", &cfg.ServiceCA, *serviceCA)
	override("service-pin", &cfg.ServicePin, *servicePin)
	if set["insecure"] {
		cfg.Insecure = *insecure
	}
	if set["tls"] {
		cfg.TLS = *devTLS
	}
	override("listen", &cfg.Listen, *listen)
	override("memory-limit", &cfg.MemoryLimit, *memLimit)
	override("unifiedpush", &cfg.UnifiedPush, *unifiedPush)
	if set["heartbeat-ceiling"] {
		if err := platform.ValidHeartbeatCeiling(*hbCeiling); err != nil || *hbCeiling == 0 {
			return settings{}, fs, fmt.Errorf("--heartbeat-ceiling %v: want %v to %v", *hbCeiling, platform.MinHeartbeatCeiling, platform.MaxHeartbeatCeiling)
		}
		cfg.HeartbeatCeiling.Duration = *hbCeiling
	}
	if cfg.UnifiedPush != "" && !platform.ValidUnifiedPushBus(cfg.UnifiedPush) {
		return settings{}, fs, fmt.Errorf("--unifiedpush %q: want session, system, off or a D-Bus address", cfg.UnifiedPush)
	}
	for _, h := range uiHosts {
		if err := platform.ValidUIHost(h); err != nil {
			return settings{}, fs, fmt.Errorf("--ui-host: %w", err)
		}
	}
	cfg.UIHosts = append(cfg.UIHosts, uiHosts...)
	cfg.ApplyDefaults(paths)
	if cfg.UnifiedPush == "" {
		// A user's daemon serves the user's desktop apps; a system
		// service has only the system bus.
		cfg.UnifiedPush = daemon.UnifiedPushSession
		if !userMode() {
			cfg.UnifiedPush = daemon.UnifiedPushSystem
		}
	}
	limit, err := memoryLimit(cfg.MemoryLimit, os.LookupEnv)
	if err != nil {
		return settings{}, fs, err
	}
	// Written back resolved, so that `herald config` prints what a file
	// needs to get the same limit.
	cfg.MemoryLimit = platform.FormatSize(limit)
	return settings{Config: cfg, ConfigFile: *configFile, ServiceName: *serviceName, MemoryLimitBytes: limit}, fs, nil
}

// memoryLimit resolves memory_limit (or --memory-limit): a size with an
// optional KiB, MiB or GiB suffix, "off" for none, or "" for the default
// unless GOMEMLIMIT already sets one.
func memoryLimit(value string, env func(string) (string, bool)) (int64, error) {
	if strings.TrimSpace(value) == "" {
		if _, ok := env("GOMEMLIMIT"); ok {
			return 0, nil
		}
		return DefaultMemoryLimit, nil
	}
	n, err := platform.ParseSize(value)
	if err != nil {
		return 0, fmt.Errorf("memory limit: %w", err)
	}
	return n, nil
}

// settingsError reports loadSettings' error: the help after --help, else
// the error.
func settingsError(fs *flag.FlagSet, err error, stdout, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		cli.PrintHelp(fs, stdout)
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", fs.Name(), err)
	return 2
}

// effectiveConfig is the configuration as `herald config` prints it, as a
// map for `herald status --json`.
func effectiveConfig(s settings) (map[string]any, error) {
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(s); err != nil {
		return nil, fmt.Errorf("effective configuration: %w", err)
	}
	m := map[string]any{}
	if _, err := toml.NewDecoder(&b).Decode(&m); err != nil {
		return nil, fmt.Errorf("effective configuration: %w", err)
	}
	return m, nil
}

func printConfig(args []string, stdout, stderr io.Writer) int {
	s, fs, err := loadSettings("config", args)
	if err != nil {
		return settingsError(fs, err, stdout, stderr)
	}
	fmt.Fprintf(stdout, "# effective configuration (file: %s)\n", s.ConfigFile)
	if err := toml.NewEncoder(stdout).Encode(s); err != nil {
		fmt.Fprintf(stderr, "herald config: %v\n", err)
		return 1
	}
	return 0
}

func runDaemon(args []string, stdout, stderr io.Writer) int {
	s, fs, err := loadSettings("run", args)
	if err != nil {
		return settingsError(fs, err, stdout, stderr)
	}
	level, err := platform.ParseLogLevel(s.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "herald run: %v\n", err)
		return 2
	}
	// Checked before anything starts: an insecure service is a
	// configuration error, not a failure to retry.
	if _, err := linkSecurity(s.Config); err != nil {
		fmt.Fprintf(stderr, "herald run: %v\n", err)
		return 2
	}
	log := cli.Logger(stderr, level)
	if s.MemoryLimitBytes > 0 {
		debug.SetMemoryLimit(s.MemoryLimitBytes)
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
	if err := checkSocketFree(s.Socket, " (and --data DIR, --listen ADDR)"); err != nil {
		return err
	}
	link, err := linkSecurity(s.Config)
	if err != nil {
		return err
	}
	link.HeartbeatCeiling = s.HeartbeatCeiling.Duration
	serviceURL := s.Service
	var dev devtls.Files
	if serviceURL == "" {
		sc := server.ServeConfig{Listen: s.Config.Listen, Server: server.Config{Logger: log.With("part", "service")}}
		if s.TLS {
			if dev, err = embeddedTLS(&sc, &link, s.Data, log.With("part", "service")); err != nil {
				return err
			}
		}
		svc, err := startEmbedded(ctx, s.Data, sc)
		if err != nil {
			return listenClash(err, "embedded notification service", s.Config.Listen,
				fmt.Sprintf("Use that service with --service http://%s, or give this one another address with --listen ADDR (config key listen).", s.Config.Listen))
		}
		defer svc.Close()
		serviceURL = svc.URL()
	}
	phone := &ui.Single{}
	uiKey, err := startScreenKey(s.UI, s.Data)
	if err != nil {
		return err
	}
	page := ui.New(ui.Config{Phones: phone, Logger: log.With("part", "ui"), Hosts: s.UIHosts, Key: uiKey})
	effective, err := effectiveConfig(s)
	if err != nil {
		return err
	}
	d, err := daemon.New(daemon.Config{Service: serviceURL, Link: link, DataDir: s.Data, Socket: s.Socket, SocketGroup: s.SocketGroup,
		UnifiedPushBus: s.UnifiedPush, Display: display, Logger: log, PowerSource: powerSource, Handlers: s.Handlers, Effective: effective,
		Supply: func() (bool, bool) { return platform.PowerSource{}.OnPower(), platform.Network{}.OnWiFi() }, HeartbeatCeiling: meteredCeiling(s.Config, platform.NetworkCost{}.Metered, log),
		History: daemon.History{ToastsKept: s.ToastsKept, ToastsMaxAge: s.ToastsMaxAge.Duration,
			EventsKept: s.EventsKept, EventsMaxAge: s.EventsMaxAge.Duration},
		OnChange: func(c daemon.Change) { page.Notify("", c) }})
	if err != nil {
		return err
	}
	defer d.Close()
	phone.D = d
	if s.UI != "" {
		url, stopUI, err := startUI(ctx, s.UI, page.Handler(), log)
		if err != nil {
			return listenClash(err, "start screen", s.UI, "Give it another address with --ui ADDR (config key ui, env HERALD_UI).")
		}
		defer stopUI()
		d.SetStartScreen(page.PageURL(url, ""))
		fmt.Fprintf(stdout, "herald: start screen %s\n%s", page.PageURL(url, ""), startScreenNote)
	}

	fmt.Fprintf(stdout, "herald: notification service %s\nherald: local API socket %s\n", serviceURL, s.Socket)
	if s.TLS {
		printDevTLS(stdout, dev)
	}
	if s.Service == "" {
		cacert := ""
		if s.TLS {
			cacert = " --cacert " + dev.CA
		}
		fmt.Fprintf(stdout, `
Send a first toast (in another terminal; add --socket %[1]s if it is not the default):
  URI=$(%[2]s open demo --toast)
  curl -H 'X-WindowsPhone-Target: toast' -H 'X-NotificationClass: 2' -H 'Content-Type: text/xml' \
    --data '<?xml version="1.0" encoding="utf-8"?><wp:Notification xmlns:wp="WPNotification"><wp:Toast><wp:Text1>Hello</wp:Text1><wp:Text2>from Herald</wp:Text2></wp:Toast></wp:Notification>' \
    -i%[3]s "$URI"
  %[2]s toasts

`, s.Socket, selfCommand(os.Executable, exec.LookPath), cacert)
	}
	return d.Run(ctx)
}

// selfCommand is how the user runs this binary from another terminal, for
// the hints the daemon prints: "herald" when that is this binary on the
// PATH (go install), "go run ./cmd/herald" when go run built it in a
// temporary directory, and its full path otherwise.
func selfCommand(executable func() (string, error), lookPath func(string) (string, error)) string {
	exe, err := executable()
	if err != nil {
		return "herald"
	}
	if p, err := lookPath("herald"); err == nil && sameFile(p, exe) {
		return "herald"
	}
	if strings.Contains(filepath.ToSlash(exe), "/go-build") {
		return "go run ./cmd/herald"
	}
	if strings.ContainsAny(exe, " '\"$`\\") {
		return "'" + strings.ReplaceAll(exe, "'", `'\''`) + "'"
	}
	return exe
}

func sameFile(a, b string) bool {
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	return err == nil && os.SameFile(fa, fb)
}

// meteredCeiling returns the heartbeat ceiling on the network the device
// is on now: the metered one on a metered or cellular network, as detect
// (platform.NetworkCost's Metered; a parameter so that tests can say what
// the network is) tells, but never above the configured one. Detection
// that fails reports not metered, so the configured ceiling holds.
func meteredCeiling(c platform.Config, detect func(context.Context) (bool, string), log *slog.Logger) func(ctx context.Context) time.Duration {
	return func(ctx context.Context) time.Duration {
		metered, how := detect(ctx)
		if !metered {
			return c.HeartbeatCeiling.Duration
		}
		ceiling := min(c.HeartbeatCeiling.Duration, c.MeteredHeartbeatCeiling.Duration)
		log.Debug("metered network", "detected_by", how, "heartbeat_ceiling", ceiling)
		return ceiling
	}
}
