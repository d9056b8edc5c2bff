// Command heraldbench drives many devices against a Herald notification
// service on this host and reports memory, CPU, latency and losses.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served on --pprof, for profiling an in-process service
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/heraldpush/herald/internal/bench"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if err := bench1(args, stdout, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "heraldbench:", err)
		return 1
	}
	return 0
}

func bench1(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("heraldbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.Config
	fs.IntVar(&cfg.Devices, "devices", 1000, "devices to connect, one channel each")
	fs.Float64Var(&cfg.Rate, "rate", 0, "notifications per second (0: idle run)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send (at most 10m)")
	fs.DurationVar(&cfg.Hold, "hold", 2*time.Second, "idle time after connecting, before measuring memory")
	fs.StringVar(&cfg.Service, "service", "", "base URL of a running heraldsvc on loopback (default: start one in-process)")
	postTo := fs.String("post-to", "", "base URLs of other nodes of the --service's cluster, comma-separated: notifications are posted there, devices stay on --service")
	fs.IntVar(&cfg.ServicePID, "service-pid", 0, "process id of the --service, for its RSS and CPU")
	fs.StringVar(&cfg.ServiceBinary, "heraldsvc", "", "start this heraldsvc executable as the service, in its own process (default: in-process)")
	fs.StringVar(&cfg.DataDir, "data", "", "directory for the in-process service's database (default: a temporary one)")
	fs.IntVar(&cfg.Sources, "sources", 8, "loopback source addresses for devices (127.0.0.2 onwards)")
	fs.IntVar(&cfg.Senders, "senders", 64, "HTTP requests in flight at once")
	fs.IntVar(&cfg.Connectors, "connectors", 32, "devices connecting at once")
	fs.BoolVar(&cfg.Reconnect, "reconnect", false, "once connected, drop every device and connect them again, timing the hellos")
	failover := fs.String("failover", "", "other nodes of the --service's cluster, comma-separated: devices move to them when it fails")
	fs.BoolVar(&cfg.Kill, "kill", false, "once connected, SIGKILL the --service-pid process and time until every device is back on a --failover node")
	fs.BoolVar(&cfg.Browsers, "browsers", false, "the devices are browsers speaking Firefox's push protocol, sent Web Push messages (docs/browsers.md)")
	fs.DurationVar(&cfg.Drain, "drain", 10*time.Second, "how long to wait for deliveries after the last request")
	fs.BoolVar(&cfg.Floor, "floor", false, "first run the same against a floor, a service of the same shape that keeps nothing (in-process), and print each figure's ratio to it")
	fs.BoolVar(&cfg.DurableFloor, "durable-floor", false, "after the --floor (implied), run the same against a durable floor: the floor plus a SQLite insert per notification, committed before it is sent, and a delete per ack, group-committed; print the ratios to it")
	cpuPIDs := fs.String("cpu-pids", "", "process ids of every process of the service (NATS servers and nodes), comma-separated: their CPU over the send phase is divided by the notifications delivered")
	fs.DurationVar(&cfg.Settle, "settle", time.Second, "with --cpu-pids, how long after the last delivery to sample their CPU (so lazy acks count)")
	var jsFloor bench.JetStreamFloor
	fs.StringVar(&jsFloor.URLs, "jetstream-floor", "", "nats:// URLs of a running NATS cluster, comma-separated: measure the JetStream floor there (a replicated publish, one delivery and one purge a message; no service, no devices) rather than a service")
	natsNkey := fs.String("nats-nkey", "", "with --jetstream-floor, the NATS nkey seed file to connect with")
	fs.IntVar(&jsFloor.Replicas, "jetstream-replicas", 3, "with --jetstream-floor, the floor stream's replicas")
	jsonOut := fs.String("json", "", "also write the result as JSON to this file")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this loopback address (e.g. 127.0.0.1:6060)")
	verbose := fs.Bool("v", false, "log the service and devices to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Devices <= 0 || cfg.Devices > 100_000 {
		return fmt.Errorf("--devices %d: want 1 to 100000", cfg.Devices)
	}
	if cfg.Duration <= 0 || cfg.Duration > 10*time.Minute {
		return fmt.Errorf("--duration %v: want above 0 and at most 10m", cfg.Duration)
	}
	if cfg.Rate < 0 || cfg.Rate > 1_000_000 {
		return fmt.Errorf("--rate %v: want 0 to 1000000", cfg.Rate)
	}
	if *postTo != "" {
		if cfg.Service == "" {
			return fmt.Errorf("--post-to needs --service")
		}
		for _, u := range strings.Split(*postTo, ",") {
			if err := bench.CheckLoopback(u); err != nil {
				return err
			}
			cfg.PostTo = append(cfg.PostTo, u)
		}
	}
	if jsFloor.URLs != "" {
		// The floor runs no service and no devices: a flag about them
		// would be ignored, so it is refused.
		if cfg.Service != "" || cfg.ServiceBinary != "" || cfg.Floor || cfg.DurableFloor || cfg.Browsers ||
			*postTo != "" || *failover != "" || cfg.Kill || cfg.Reconnect {
			return fmt.Errorf("--jetstream-floor measures NATS alone: no --service, --heraldsvc, --floor, --durable-floor, --browsers, --post-to, --failover, --kill or --reconnect with it")
		}
	} else if *natsNkey != "" || jsFloor.Replicas != 3 {
		return fmt.Errorf("--nats-nkey and --jetstream-replicas need --jetstream-floor")
	}
	if *cpuPIDs != "" {
		for _, f := range strings.Split(*cpuPIDs, ",") {
			pid, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || pid <= 0 {
				return fmt.Errorf("--cpu-pids: %q is not a process id", f)
			}
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
				return fmt.Errorf("--cpu-pids: process %d: %w", pid, err)
			}
			cfg.CPUPIDs = append(cfg.CPUPIDs, pid)
		}
	}
	if *failover != "" {
		if cfg.Service == "" {
			return fmt.Errorf("--failover needs --service")
		}
		for _, u := range strings.Split(*failover, ",") {
			if err := bench.CheckLoopback(u); err != nil {
				return err
			}
			cfg.Failover = append(cfg.Failover, u)
		}
	}
	if cfg.Kill && (cfg.ServicePID <= 0 || len(cfg.Failover) == 0) {
		return fmt.Errorf("--kill needs --service-pid and --failover")
	}
	if cfg.Service != "" {
		if err := bench.CheckLoopback(cfg.Service); err != nil {
			return err
		}
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	}
	if *pprofAddr != "" {
		if err := bench.CheckLoopback("http://" + *pprofAddr); err != nil {
			return fmt.Errorf("--pprof: %w", err)
		}
		go func() {
			if err := http.ListenAndServe(*pprofAddr, nil); err != nil {
				slog.Error("pprof", "err", err)
			}
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var res *bench.Result
	var err error
	if jsFloor.URLs != "" {
		if *natsNkey != "" {
			o, err := nats.NkeyOptionFromSeed(*natsNkey)
			if err != nil {
				return fmt.Errorf("--nats-nkey: %w", err)
			}
			jsFloor.Options = append(jsFloor.Options, o)
		}
		res, err = bench.RunJetStreamFloor(ctx, cfg, jsFloor)
	} else {
		res, err = bench.Run(ctx, cfg)
	}
	if err != nil {
		return err
	}
	if err := bench.WriteTable(stdout, res); err != nil {
		return err
	}
	if *jsonOut != "" {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", *jsonOut, err)
		}
	}
	return nil
}
