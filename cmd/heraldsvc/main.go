// Command heraldsvc is Herald's notification service: cloud services POST
// MPNS notifications to channel URIs, and devices keep one websocket each.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/heraldpush/herald/internal/cli"
	"github.com/heraldpush/herald/internal/devtls"
	"github.com/heraldpush/herald/mpns"
	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/server"
)

// defaultGCPercent is the service's GOGC unless the environment sets one.
const defaultGCPercent = 50

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

const usage = `usage:
  heraldsvc serve [--listen ADDR] [--db PATH] [--public-url URL] [--inactive-after D] [--forget-devices-after D] [--queue-depth N]
                  [--tls-listen ADDR --tls-cert FILE --tls-key FILE [--tls-client-ca FILE [--auth-url URL]]]
                  [--tls-self-signed [--tls-listen ADDR] [--tls-dir DIR]]
                  [--daily-quota N] [--channel-rate R] [--sender-rate R] [--max-in-flight N] [--max-body-reads-per-source N]
                  [--max-body BYTES] [--max-header BYTES] [--max-devices-per-source N] [--limit-loopback]
                  [--max-pending-hellos-per-source N] [--max-pending-hellos N]
                  [--read-header-timeout D] [--read-timeout D] [--debug-listen ADDR] [--config FILE]
  heraldsvc config [serve flags]   (the effective configuration, as a file serve --config loads)
  heraldsvc send toast|tile|raw URI [fields]   (heraldsvc send --help)
`

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve", "config":
		return serve(args[0], args[1:], stdout, stderr)
	case "send":
		return send(args[1:], stdin, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "heraldsvc: unknown command %q\n%s", args[0], usage)
	return 2
}

func serve(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := cli.NewFlagSet("heraldsvc "+cmd, commandUsage(cmd))
	listen := fs.String("listen", "127.0.0.1:8790", "address to listen on (also serves Prometheus metrics on /metrics)")
	db := fs.String("db", "heraldsvc.db", "SQLite database file (without --store)")
	var ns natsFlags
	ns.register(fs)
	public := fs.String("public-url", "", "base URL of channel URIs as senders reach this service (default http://LISTEN)")
	inactive := fs.Duration("inactive-after", server.DefaultInactiveAfter, "how long a device may be away before senders get 412 and nothing is queued")
	forget := fs.Duration("forget-devices-after", server.DefaultForgetDevicesAfter,
		"how long a device may be away before it is deleted with its channels and queue (0: never)")
	depth := fs.Int("queue-depth", server.DefaultQueueDepth, "most notifications queued per device; past it senders get QueueFull")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	tlsListen := fs.String("tls-listen", "", "second address, speaking TLS: devices (wss://), senders, and with --tls-client-ca authenticated senders (https channel URIs)")
	tlsCert := fs.String("tls-cert", "", "PEM certificate chain of the TLS listener")
	tlsKey := fs.String("tls-key", "", "PEM private key of the TLS listener")
	tlsCA := fs.String("tls-client-ca", "", "PEM CA certificates that issue authenticated senders' client certificates (default: no authenticated senders)")
	selfSigned := fs.Bool("tls-self-signed", false, "development TLS: a local CA and a certificate for 127.0.0.1, ::1 and localhost, kept in --tls-dir; TLS on --tls-listen (default "+defaultDevTLSListen+"), channel URIs https there")
	tlsDir := fs.String("tls-dir", "", "directory of --tls-self-signed's CA and certificate (default heraldsvc-tls beside --db)")
	authURL := fs.String("auth-url", "", "base URL of https channel URIs as senders reach the TLS listener (default https://TLS-LISTEN)")
	var lim server.Limits
	fs.IntVar(&lim.DailyQuota, "daily-quota", server.DefaultDailyQuota, "notifications per unauthenticated channel per UTC day before 406 (-1: none)")
	fs.Float64Var(&lim.ChannelRate, "channel-rate", server.DefaultChannelRate, "notifications per second per channel (-1: no limit)")
	fs.IntVar(&lim.ChannelBurst, "channel-burst", server.DefaultChannelBurst, "burst allowed above --channel-rate")
	fs.Float64Var(&lim.SenderRate, "sender-rate", server.DefaultSenderRate, "notifications per second per sender address (-1: no limit)")
	fs.IntVar(&lim.SenderBurst, "sender-burst", server.DefaultSenderBurst, "burst allowed above --sender-rate")
	fs.IntVar(&lim.MaxInFlight, "max-in-flight", server.DefaultMaxInFlight, "notifications to existing channels handled at once; past it 503")
	fs.IntVar(&lim.MaxBodyReadsPerSource, "max-body-reads-per-source", server.DefaultMaxBodyReadsPerSource,
		"request bodies read at once from one sender address; past it that address gets 503 (-1: no limit)")
	fs.DurationVar(&lim.SlowStore, "slow-store", server.DefaultSlowStore, "store latency past which senders get 503 for a while")
	fs.IntVar(&lim.MaxBodyBytes, "max-body", server.DefaultMaxBodyBytes, "largest notification body in bytes (at most 3072)")
	fs.IntVar(&lim.MaxHeaderBytes, "max-header", server.DefaultMaxHeaderBytes, "largest notification headers in bytes")
	fs.IntVar(&lim.MaxMulticast, "max-multicast", server.DefaultMaxMulticast, "most channels in one multicast")
	fs.IntVar(&lim.MaxDevicesPerSource, "max-devices-per-source", server.DefaultMaxDevicesPerSource, "devices enrolled from one address")
	fs.BoolVar(&lim.LimitLoopback, "limit-loopback", false, "apply --max-devices-per-source to loopback too")
	fs.IntVar(&lim.MaxPendingHellosPerSource, "max-pending-hellos-per-source", server.DefaultMaxPendingHellosPerSource,
		"device connections from one address that have not said hello; past it 503 (-1: no limit)")
	fs.IntVar(&lim.MaxPendingHellos, "max-pending-hellos", server.DefaultMaxPendingHellos,
		"device connections in total that have not said hello; past it 503 (at most a quarter of the descriptor limit)")
	headerTimeout := fs.Duration("read-header-timeout", 5*time.Second, "time a client has to send its request headers")
	readTimeout := fs.Duration("read-timeout", 15*time.Second, "time a client has to send its whole request")
	debugListen := fs.String("debug-listen", "", "serve Go's profiler (net/http/pprof) on this loopback address, e.g. 127.0.0.1:6060")
	pos, code, ok := parseServe(fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "heraldsvc serve: unexpected argument %q\n", pos[0])
		return 2
	}
	var devTLS devtls.Files
	var getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	if *selfSigned {
		dir, err := devTLSSetup(tlsListen, *tlsCert, *tlsKey, *tlsDir, *db)
		if err != nil {
			fmt.Fprintf(stderr, "heraldsvc serve: %v\n", err)
			return 2
		}
		if devTLS, err = devtls.Ensure(dir, time.Now()); err != nil {
			fmt.Fprintf(stderr, "heraldsvc serve: --tls-self-signed: %v\n", err)
			return 1
		}
		*tlsCert, *tlsKey = devTLS.Cert, devTLS.Key
	} else if *tlsDir != "" {
		fmt.Fprintln(stderr, "heraldsvc serve: --tls-dir needs --tls-self-signed")
		return 2
	}
	if *tlsListen != "" && (*tlsCert == "" || *tlsKey == "") {
		fmt.Fprintln(stderr, "heraldsvc serve: --tls-listen needs --tls-cert and --tls-key")
		return 2
	}
	if *authURL != "" && *tlsCA == "" {
		fmt.Fprintln(stderr, "heraldsvc serve: --auth-url needs --tls-client-ca")
		return 2
	}
	if *tlsListen == "" && (*tlsCert != "" || *tlsKey != "" || *tlsCA != "" || *authURL != "") {
		fmt.Fprintln(stderr, "heraldsvc serve: TLS flags without --tls-listen")
		return 2
	}
	if err := ns.check(); err != nil {
		fmt.Fprintf(stderr, "heraldsvc serve: %v\n", err)
		return 2
	}
	if ns.urls == "" && !sqliteBuilt {
		fmt.Fprintf(stderr, "heraldsvc serve: %v\n", errNoSQLite)
		return 2
	}
	if lim.MaxBodyBytes > mpns.MaxBodySize || lim.MaxBodyBytes <= 0 {
		fmt.Fprintf(stderr, "heraldsvc serve: --max-body must be 1-%d\n", mpns.MaxBodySize)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "heraldsvc serve: bad --log-level %q\n", *logLevel)
		return 2
	}
	log := cli.Logger(stderr, level)
	if *selfSigned {
		// Renewed while serving, so a service up for a year never serves
		// an expired certificate.
		keeper, err := devtls.NewKeeper(devTLS, time.Now, log.Info)
		if err != nil {
			fmt.Fprintf(stderr, "heraldsvc serve: --tls-self-signed: %v\n", err)
			return 1
		}
		getCert = keeper.GetCertificate
	}
	if os.Getenv("GOGC") == "" {
		// Go sizes the heap's growth between collections by the live heap
		// plus every goroutine stack, and an idle device is mostly its
		// read loop's stack: at Go's default of 100 the heap may grow by
		// twice the live data before a collection, at 25 by half. It costs
		// a few percent of CPU under load (docs/performance.md).
		debug.SetGCPercent(defaultGCPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *debugListen != "" {
		closeDebug, err := serveDebug(*debugListen, log)
		if err != nil {
			fmt.Fprintf(stderr, "heraldsvc serve: --debug-listen: %v\n", err)
			return 2
		}
		defer closeDebug()
	}
	// The backend is chosen here: NATS JetStream with --store, else SQLite
	// in --db. The service runs it and closes it.
	backend, presence, quota, err := ns.open(*depth, log)
	if err == nil && backend == nil {
		backend, err = openSQLite(ctx, *db, log)
	}
	if err != nil {
		fmt.Fprintf(stderr, "heraldsvc serve: %v\n", err)
		return 1
	}
	svc, err := server.NewService(ctx, server.ServeConfig{Listen: *listen, Store: backend, PublicURL: *public, TLSPublic: *selfSigned,
		TLSListen: *tlsListen, TLS: server.TLSFiles{Cert: *tlsCert, Key: *tlsKey, ClientCA: *tlsCA, GetCertificate: getCert}, AuthURL: *authURL,
		ReadHeaderTimeout: *headerTimeout, ReadTimeout: *readTimeout,
		Server: server.Config{Logger: log, InactiveAfter: *inactive, ForgetDevicesAfter: *forget, QueueDepth: *depth, Limits: lim, Presence: presence, Quota: quota}})
	if err != nil {
		fmt.Fprintf(stderr, "heraldsvc serve: %v\n", err)
		if platform.IsAddrInUse(err) {
			addr, flagName := *listen, "--listen"
			if *tlsListen != "" && strings.Contains(err.Error(), *tlsListen) {
				addr, flagName = *tlsListen, "--tls-listen"
			}
			fmt.Fprintf(stderr, "  %s is in use by %s. Pass %s ADDR for another address"+
				" (a herald run without --service has its own service on 127.0.0.1:8790: stop it, or run the phone with --service pointing here).\n",
				addr, platform.PortOwner(addr), flagName)
		}
		return 1
	}
	fmt.Fprintf(stdout, "heraldsvc listening on %s (channel URIs under %s)\n", svc.Addr(), svc.URL())
	if a := svc.TLSAddr(); a != nil && svc.AuthURL() != "" {
		fmt.Fprintf(stdout, "TLS on %s; authenticated senders' https channel URIs under %s\n", a, svc.AuthURL())
	} else if a != nil {
		fmt.Fprintf(stdout, "TLS on %s (devices dial wss://%s%s)\n", a, a, server.DevicePath)
	}
	if *selfSigned {
		printDevTLS(stdout, devTLS, "https://"+svc.TLSAddr().String())
	}
	// A store that waits for its servers (NATS) ends the service only if
	// it gives up: credentials refused.
	runCtx, giveUp := context.WithCancelCause(ctx)
	defer giveUp(nil)
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		if w, ok := backend.(interface{ Wait(context.Context) error }); ok {
			if err := w.Wait(runCtx); err != nil && runCtx.Err() == nil {
				giveUp(err)
			}
		}
	}()
	stopping := context.AfterFunc(ctx, func() { log.Info("shutting down") })
	defer stopping()
	// Run serves until a signal or the store gives up, then stops the
	// parts in their order.
	err = svc.Run(runCtx)
	giveUp(nil)
	<-waited
	if cause := context.Cause(runCtx); ctx.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
		fmt.Fprintf(stderr, "heraldsvc serve: %v\n", cause)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "heraldsvc serve: %v\n", err)
		return 1
	}
	return 0
}

const sendUsage = `usage:
  heraldsvc send toast URI --text1 T [--text2 T] [--param /Page.xaml?k=v] [--sound PATH | --silent]
  heraldsvc send tile  URI [--id TILE_ID] [--template FlipTile|IconicTile|CycleTile] [--title T] [--count N]
                           [--background-image URL] [--back-title T] [--back-content T] [--field Name=Value]... [--clear Name]...
  heraldsvc send raw   URI [--body TEXT | --file PATH|-]
common: [--delay 0|450|900] [--message-id ID] [--timeout 15s] [--cert FILE --key FILE] [--ca FILE]
Prints {"status","notification","subscription","device","message_id"}; exits 0 only when the notification was Received.
`

func send(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, sendUsage)
		return 2
	}
	if args[0] == "--help" || args[0] == "-h" || args[0] == "-help" {
		fmt.Fprint(stdout, sendUsage)
		return 0
	}
	kind := mpns.Kind(args[0])
	fs := flag.NewFlagSet("send", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // the help is sendUsage, printed below
	delay := fs.Int("delay", 0, "delivery class: 0 (immediate), 450 or 900 seconds")
	msgID := fs.String("message-id", "", "X-MessageID to send (default: a new UUID)")
	timeout := fs.Duration("timeout", 15*time.Second, "give up after this long")
	text1 := fs.String("text1", "", "toast: bold title")
	text2 := fs.String("text2", "", "toast: body")
	param := fs.String("param", "", "toast: page the app opens on tap")
	sound := fs.String("sound", "", "toast: sound file in the app")
	silent := fs.Bool("silent", false, "toast: no sound")
	tileID := fs.String("id", "", "tile: secondary tile id (empty = primary tile)")
	template := fs.String("template", "", "tile: FlipTile, IconicTile or CycleTile (empty = WP7 tile)")
	title := fs.String("title", "", "tile: Title")
	count := fs.String("count", "", "tile: Count (0 hides the badge)")
	bg := fs.String("background-image", "", "tile: BackgroundImage")
	backTitle := fs.String("back-title", "", "tile: BackTitle")
	backContent := fs.String("back-content", "", "tile: BackContent")
	var fields, clears cli.Strings
	fs.Var(&fields, "field", "tile: any field, Name=Value (repeatable)")
	fs.Var(&clears, "clear", "tile: clear a field, Name (repeatable)")
	certFile := fs.String("cert", "", "client certificate (PEM) for an https channel URI")
	keyFile := fs.String("key", "", "key (PEM) of --cert")
	caFile := fs.String("ca", "", "CA certificates (PEM) to trust for the service's TLS certificate")
	body := fs.String("body", "", "raw: payload text")
	file := fs.String("file", "", "raw: payload file, - for stdin")
	pos, err := cli.Parse(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, sendUsage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	}
	if err != nil {
		return 2
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, sendUsage)
		return 2
	}
	uri := pos[0]

	var msg mpns.Message
	switch kind {
	case mpns.KindToast:
		msg = &mpns.Toast{Text1: *text1, Text2: *text2, Param: *param, Sound: *sound, Silent: *silent}
	case mpns.KindTile:
		t := &mpns.Tile{ID: *tileID, Template: *template}
		add := func(name, value string) {
			if value != "" {
				t.Fields = append(t.Fields, mpns.Field{Name: name, Value: value})
			}
		}
		add("BackgroundImage", *bg)
		add("Count", *count)
		add("Title", *title)
		add("BackTitle", *backTitle)
		add("BackContent", *backContent)
		for _, f := range fields {
			name, value, ok := strings.Cut(f, "=")
			if !ok {
				fmt.Fprintf(stderr, "heraldsvc send: --field %q must be Name=Value\n", f)
				return 2
			}
			add(name, value)
		}
		for _, c := range clears {
			t.Fields = append(t.Fields, mpns.Field{Name: c, Clear: true})
		}
		msg = t
	case mpns.KindRaw:
		var payload []byte
		switch {
		case *file == "-":
			payload, err = io.ReadAll(io.LimitReader(stdin, mpns.MaxBodySize+1))
		case *file != "":
			payload, err = os.ReadFile(*file)
		default:
			payload = []byte(*body)
		}
		if err != nil {
			fmt.Fprintf(stderr, "heraldsvc send: %v\n", err)
			return 1
		}
		msg = mpns.Raw(payload)
	default:
		fmt.Fprintf(stderr, "heraldsvc send: kind must be %s, not %q\n", mpns.KindNames(), args[0])
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := mpns.NewRequest(ctx, uri, msg, mpns.SendOptions{Delay: mpns.Delay(*delay), MessageID: *msgID})
	switch {
	case errors.Is(err, mpns.ErrBadClass):
		fmt.Fprintln(stderr, "heraldsvc send: --delay must be 0, 450 or 900")
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "heraldsvc send: %v\n", err)
		return 2
	}
	client := &mpns.Client{HTTP: &http.Client{Timeout: *timeout}}
	if *certFile != "" || *caFile != "" {
		tc, err := clientTLS(*certFile, *keyFile, *caFile)
		if err != nil {
			fmt.Fprintf(stderr, "heraldsvc send: %v\n", err)
			return 2
		}
		client.HTTP.Transport = &http.Transport{TLSClientConfig: tc}
	}
	res, err := client.Do(req)
	if err != nil {
		res.Error = err.Error()
	}
	enc := json.NewEncoder(stdout)
	enc.Encode(res)
	if res.Received() {
		return 0
	}
	if why := notReceived(kind, res); why != "" {
		fmt.Fprintf(stderr, "heraldsvc send: %s\n", why)
	}
	return 1
}

// notReceived says why a notification the service answered was not
// Received, and what to do, for the outcomes a sender can act on; "" for
// others (their JSON says enough).
func notReceived(kind mpns.Kind, res mpns.Result) string {
	if res.Status != http.StatusOK || res.Notification != mpns.StatusSuppressed {
		return ""
	}
	switch {
	case strings.HasPrefix(res.Error, "channel not bound to"):
		return fmt.Sprintf("Suppressed: the channel is not bound to %[1]s notifications, so the phone's shell would not show it. "+
			"The app binds it when it opens the channel (herald open APP --%[1]s, or {\"%[1]s\": true} in POST /v1/apps/APP/channel), "+
			"or later with PATCH /v1/apps/APP/channel/bindings {\"%[1]s\": true} (docs/local-api.md).", kind)
	case res.Error == "tile not pinned":
		return "Suppressed: that secondary tile is not pinned; the app pins it first (herald pin APP TILE_ID, or POST /v1/apps/APP/pins)."
	case strings.Contains(res.Error, "power"):
		return "Suppressed: " + res.Error + ", so the phone takes no toasts or tiles (herald power normal on the phone lifts it)."
	case res.Error != "":
		return "Suppressed: " + res.Error
	}
	return "Suppressed by the service"
}

// clientTLS is the TLS configuration of an authenticated sender.
func clientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no PEM certificates in %s", caFile)
		}
	}
	return tc, nil
}
