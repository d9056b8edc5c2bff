package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/daemon"
	"github.com/heraldpush/herald/emulator"
	"github.com/heraldpush/herald/internal/cli"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/ui"
)

// newClient is the local API client for a command's --socket and --device.
func newClient(fs *flag.FlagSet, socket string) *app.Client {
	c := app.NewClient(socket)
	if f := fs.Lookup("device"); f != nil && f.Value.String() != "" {
		c = c.WithDevice(f.Value.String())
	}
	return c
}

// startScreenNote follows the start screen's address: who may open it.
const startScreenNote = "  (the address carries the page's key: open it as printed; `herald ui-url` prints it again;\n" +
	"  other users of this machine reach the port but not the key, and get nothing)\n"

// startScreenKey is the start screen's key, kept in the data directory
// (readable by the daemon's user only) so that the address and the
// browser's session outlive a restart; "" (a random one) when there is no
// UI.
func startScreenKey(addr, dataDir string) (string, error) {
	if addr == "" {
		return "", nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("data directory: %w", err)
	}
	return ui.LoadKey(filepath.Join(dataDir, ui.KeyFile))
}

// startUI serves the start-screen page on addr until ctx ends. The page
// keeps other web pages out (host names, origin, session token) and other
// users of the machine (its key), but whoever has the address with its key
// can use it, so anything but loopback gets a warning.
func startUI(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		log.Warn("the UI listens beyond this machine: whoever sees its address with the key (or the traffic: it is plain HTTP) controls the phone", "addr", ln.Addr().String())
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 16 << 10,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("UI stopped", "err", err)
		}
	}()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// Server-sent event streams never end by themselves.
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
		<-done
	}
	return "http://" + ln.Addr().String() + "/", stop, nil
}

func emulateCmd(args []string, stdout, stderr io.Writer) int {
	paths := platform.DefaultPaths(userMode())
	fs := cli.NewFlagSet("herald emulate", "herald emulate --devices N [--service URL [--service-ca F] [--service-pin P] [--insecure]] [--listen ADDR] [--ui ADDR] [--ui-host NAME]... [--data DIR] [--socket PATH] [--inactive-after D] [--queue-depth N] [--daily-quota N]")
	devices := fs.Int("devices", 1, "how many phones to run")
	service := fs.String("service", "", "notification service URL (default: start an embedded one)")
	insecure := fs.Bool("insecure", false, "allow a plain http:// --service that is not on loopback (device secret proofs and notifications travel unencrypted)")
	serviceCA := fs.String("service-ca", "", "PEM CA bundle the https --service's certificate must chain to (default: the system's roots)")
	servicePin := fs.String("service-pin", "", "SHA-256 (hex or base64) of the --service's certificate or public key, or of one in its chain")
	listen := fs.String("listen", DefaultEmulatorListen, "address of the embedded notification service")
	uiAddr := fs.String("ui", "", "serve the start-screen page and /metrics on this address, e.g. 127.0.0.1:8793; the page opens with the address printed at start, key included (herald ui-url --device NAME prints it again)")
	var uiHosts cli.Strings
	fs.Var(&uiHosts, "ui-host", "a host name the UI also answers to, e.g. herald.home.arpa (repeatable)")
	data := fs.String("data", filepath.Join(paths.DataDir, "emulator"), "data directory (emulator.db, heraldsvc.db)")
	socket := fs.String("socket", app.SocketFromEnv(emulatorSocket(paths)), "local API socket for every phone (pick one with --device or the "+app.DeviceHeader+" header; env HERALD_SOCKET)")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	// The embedded service's settings, so that testers reach 412 (device
	// inactive), QueueFull and the daily quota without a separate service.
	inactive := fs.Duration("inactive-after", server.DefaultInactiveAfter, "embedded service: how long a phone may be away before senders get 412")
	depth := fs.Int("queue-depth", server.DefaultQueueDepth, "embedded service: most notifications queued per phone; past it senders get QueueFull")
	quota := fs.Int("daily-quota", server.DefaultDailyQuota, "embedded service: notifications per unauthenticated channel per UTC day before 406 (-1: none)")
	pos, code, ok := cli.ParseCommand(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "herald emulate: unexpected argument %q\n", pos[0])
		return 2
	}
	level, err := platform.ParseLogLevel(*logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "herald emulate: %v\n", err)
		return 2
	}
	switch {
	case *inactive <= 0:
		fmt.Fprintf(stderr, "herald emulate: --inactive-after %s must be positive\n", *inactive)
		return 2
	case *depth <= 0:
		fmt.Fprintf(stderr, "herald emulate: --queue-depth %d must be positive\n", *depth)
		return 2
	case *quota == 0 || *quota < -1:
		fmt.Fprintf(stderr, "herald emulate: --daily-quota %d must be positive, or -1 for none\n", *quota)
		return 2
	}
	for _, h := range uiHosts {
		if err := platform.ValidUIHost(h); err != nil {
			fmt.Fprintf(stderr, "herald emulate: --ui-host: %v\n", err)
			return 2
		}
	}
	embedded := *service == ""
	if !embedded {
		var given []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "inactive-after" || f.Name == "queue-depth" || f.Name == "daily-quota" || f.Name == "listen" {
				given = append(given, "--"+f.Name)
			}
		})
		if len(given) > 0 {
			fmt.Fprintf(stderr, "herald emulate: %s set the embedded service, which --service replaces; set them on that service instead\n", strings.Join(given, ", "))
			return 2
		}
	}
	// The phones reach the service as herald run does, checked before
	// anything starts.
	link, err := linkSecurity(platform.Config{Service: *service, ServiceCA: *serviceCA, ServicePin: *servicePin, Insecure: *insecure})
	if err != nil {
		fmt.Fprintf(stderr, "herald emulate: %v\n", err)
		return 2
	}
	log := cli.Logger(stderr, level)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := platform.EnsureDir(*data, 0o700); err != nil {
		fmt.Fprintf(stderr, "herald emulate: %v\n", err)
		return 1
	}

	if err := checkSocketFree(*socket, " (and --data DIR, --listen ADDR)"); err != nil {
		fmt.Fprintf(stderr, "herald emulate: %v\n", err)
		return 1
	}
	serviceURL := *service
	if serviceURL == "" {
		svc, err := startEmbedded(ctx, *data, server.ServeConfig{Listen: *listen,
			Server: server.Config{Logger: log.With("part", "service"), InactiveAfter: *inactive, QueueDepth: *depth,
				Limits: server.Limits{DailyQuota: *quota}}})
		if err != nil {
			fmt.Fprintf(stderr, "herald emulate: %v\n", listenClash(err, "embedded notification service", *listen,
				fmt.Sprintf("Use that service with --service http://%s, or give this one another address with --listen ADDR.", *listen)))
			return 1
		}
		defer svc.Close()
		serviceURL = svc.URL()
	}

	var page *ui.UI
	emu, err := emulator.New(ctx, emulator.Config{Devices: *devices, Service: serviceURL, DB: filepath.Join(*data, "emulator.db"),
		Logger: log, Link: link, OnChange: func(phone string, c daemon.Change) {
			if page != nil {
				page.Notify(phone, c)
			}
		}})
	if err != nil {
		fmt.Fprintf(stderr, "herald emulate: %v\n", err)
		return 2
	}
	defer emu.Close()
	if *uiAddr != "" {
		key, err := startScreenKey(*uiAddr, *data)
		if err != nil {
			fmt.Fprintf(stderr, "herald emulate: %v\n", err)
			return 1
		}
		page = ui.New(ui.Config{Phones: emu, Logger: log.With("part", "ui"), Hosts: uiHosts, Key: key})
	}

	ln, err := platform.ListenSocket(*socket, "")
	if err != nil {
		fmt.Fprintf(stderr, "herald emulate: local API: %v\n", err)
		return 1
	}
	apiDone := make(chan error, 1)
	go func() { apiDone <- emu.Serve(ctx, ln) }()

	names := emu.Names()
	fmt.Fprintf(stdout, "herald emulate: %d phones (%s … %s)\nherald emulate: notification service %s\nherald emulate: local API socket %s\n",
		len(names), names[0], names[len(names)-1], serviceURL, *socket)
	if page != nil {
		url, stopUI, err := startUI(ctx, *uiAddr, page.Handler(), log)
		if err != nil {
			fmt.Fprintf(stderr, "herald emulate: %v\n", listenClash(err, "start screen", *uiAddr, "Give it another address with --ui ADDR."))
			return 1
		}
		defer stopUI()
		for _, n := range names {
			emu.Phone(n).SetStartScreen(page.PageURL(url, n))
		}
		fmt.Fprintf(stdout, "herald emulate: start screen %s\n%s", page.PageURL(url, ""), startScreenNote)
	}
	fmt.Fprintf(stdout, "\nOpen an app on one phone:\n  herald open demo --toast --tile --device %s --socket %s\n\n", names[len(names)-1], *socket)

	runErr := emu.Run(ctx)
	stop()
	<-apiDone
	if runErr != nil {
		fmt.Fprintf(stderr, "herald emulate: %v\n", runErr)
		return 1
	}
	return 0
}
