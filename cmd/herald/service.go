package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/heraldpush/herald/app"
	"github.com/heraldpush/herald/internal/cli"
	"github.com/heraldpush/herald/platform"
)

// DefaultServiceName is the OS service's name; --name changes it, so that
// tests (or a second instance) never clash with a real installation.
const DefaultServiceName = "herald"

// runFlags are the flags of `herald run` that `herald install` passes on to
// the installed service.
var runFlags = []struct{ name, usage string }{
	{"config", "configuration file (TOML)"},
	{"service", "notification service URL (default: start an embedded one)"},
	{"service-ca", "PEM CA bundle the https service's certificate must chain to"},
	{"service-pin", "SHA-256 of the service's certificate or public key"},
	{"data", "data directory"},
	{"socket", "local API socket"},
	{"socket-group", "group allowed to use the local API socket"},
	{"listen", "address of the embedded notification service"},
	{"ui", "address of the start-screen page"},
	{"display", "toast display: auto, log, dbus, macos, windows"},
	{"log-level", "debug, info, warn or error"},
	{"memory-limit", "soft limit on the daemon's Go memory, e.g. 16MiB, or off"},
	{"unifiedpush", "D-Bus bus of the UnifiedPush distributor: session, system, off, or a bus address"},
	{"heartbeat-ceiling", "the longest heartbeat interval learned on a network, 1m to 24h"},
}

// serviceFlags are the flags every service command shares.
type serviceFlags struct {
	fs   *flag.FlagSet
	name *string
	user *bool
}

func newServiceFlags(cmd, usage string) serviceFlags {
	fs := cli.NewFlagSet("herald "+cmd, usage)
	return serviceFlags{
		fs:   fs,
		name: fs.String("name", DefaultServiceName, "service name"),
		user: fs.Bool("user", userMode(), "a per-user service (systemd user unit, launchd agent) rather than a system one"),
	}
}

func serviceOptions(name string, user bool) platform.ServiceOptions {
	return platform.ServiceOptions{
		Name:        name,
		DisplayName: "Herald push notifications",
		Description: "Herald device daemon: push notifications for the apps on this machine",
		User:        user,
	}
}

// installArgs are the arguments the service manager starts the daemon
// with. The paths are resolved now, for the kind of service being
// installed, so the daemon does not pick them by the user it runs as (a
// system service running as a dedicated user must still use the system
// paths) and `herald status` finds the socket.
func installArgs(name string, user bool, set map[string]string) ([]string, error) {
	paths := platform.DefaultPaths(user)
	for flagName, def := range map[string]string{"config": paths.ConfigFile, "data": paths.DataDir, "socket": paths.Socket} {
		if _, ok := set[flagName]; !ok {
			set[flagName] = def
		}
	}
	args := []string{"run", "--name=" + name}
	for _, f := range runFlags {
		v, ok := set[f.name]
		if !ok {
			continue
		}
		if f.name == "config" || f.name == "data" || f.name == "socket" {
			abs, err := filepath.Abs(v)
			if err != nil {
				return nil, fmt.Errorf("--%s: %w", f.name, err)
			}
			v = abs
		}
		args = append(args, "--"+f.name+"="+v)
	}
	return args, nil
}

// installCmd installs the OS service, or prints its systemd unit.
func installCmd(args []string, stdout, stderr io.Writer) int {
	sf := newServiceFlags("install", "herald install [--user] [--name NAME] [--print] [--run-as USER] [--log-dir DIR] [--executable PATH] [run flags]")
	print := sf.fs.Bool("print", false, "print the systemd unit instead of installing")
	runAs := sf.fs.String("run-as", "", "dedicated user the system service runs as (systemd)")
	logDir := sf.fs.String("log-dir", "", "where System V and launchd write the daemon's output (default /var/log)")
	exe := sf.fs.String("executable", "", "the herald binary the service runs, used where it is (default: a copy of this one, made at install)")
	vals := map[string]*string{}
	for _, f := range runFlags {
		vals[f.name] = sf.fs.String(f.name, "", f.usage)
	}
	pos, code, ok := cli.ParseCommand(sf.fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintln(stderr, "usage: "+cli.Usage(sf.fs))
		return 2
	}
	set := map[string]string{}
	sf.fs.Visit(func(f *flag.Flag) {
		if v, ok := vals[f.Name]; ok {
			set[f.Name] = *v
		}
	})
	runArgs, err := installArgs(*sf.name, *sf.user, set)
	if err != nil {
		return cliError(stderr, "install", err)
	}
	opts := serviceOptions(*sf.name, *sf.user)
	opts.Arguments, opts.RunAs, opts.LogDirectory, opts.Executable = runArgs, *runAs, *logDir, *exe
	if *exe == "" {
		if opts.Executable, opts.CopyFrom, err = ownCopy(*sf.name, *sf.user); err != nil {
			return cliError(stderr, "install", err)
		}
	}
	if *print {
		unit, err := platform.SystemdUnit(opts)
		if err != nil {
			return cliError(stderr, "install", err)
		}
		fmt.Fprint(stdout, unit)
		if opts.CopyFrom != "" {
			fmt.Fprintf(stderr, "herald: install copies %s to %s, which the service runs\n", opts.CopyFrom, opts.Executable)
		}
		return 0
	}
	svc, err := platform.NewService(opts, nil)
	if err != nil {
		return cliError(stderr, "install", err)
	}
	if err := svc.Control("install"); err != nil {
		return cliError(stderr, "install", err)
	}
	if opts.CopyFrom != "" {
		fmt.Fprintf(stdout, "herald: copied %s to %s for the service to run\n", opts.CopyFrom, opts.Executable)
	}
	fmt.Fprintf(stdout, "herald: installed service %s (%s) running %s; start it with: herald start%s\n",
		*sf.name, svc.Platform(), opts.Executable, nameFlag(*sf.name, *sf.user))
	return 0
}

// ownCopy is the binary the service runs unless --executable names one:
// install copies this binary to the service's own path, so that a rebuild
// or a `git clean` of the checkout it was built in does not break the
// service.
func ownCopy(name string, user bool) (dst, src string, err error) {
	src, err = os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("this binary's path: %w", err)
	}
	if s, err := filepath.EvalSymlinks(src); err == nil {
		src = s
	}
	return platform.ServiceBinary(name, user), src, nil
}

func nameFlag(name string, user bool) string {
	var s string
	if name != DefaultServiceName {
		s += " --name " + name
	}
	if user != userMode() {
		s += fmt.Sprintf(" --user=%v", user)
	}
	return s
}

// controlCmd runs uninstall, start, stop or restart.
func controlCmd(action string, args []string, stdout, stderr io.Writer) int {
	sf := newServiceFlags(action, "herald "+action+" [--user] [--name NAME]")
	pos, code, ok := cli.ParseCommand(sf.fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintln(stderr, "usage: "+cli.Usage(sf.fs))
		return 2
	}
	opts := serviceOptions(*sf.name, *sf.user)
	if action == "uninstall" {
		// Uninstalling removes the copy install made, if it made one.
		var err error
		if opts.Executable, opts.CopyFrom, err = ownCopy(*sf.name, *sf.user); err != nil {
			return cliError(stderr, action, err)
		}
	}
	svc, err := platform.NewService(opts, nil)
	if err != nil {
		return cliError(stderr, action, err)
	}
	if err := svc.Control(action); err != nil {
		return cliError(stderr, action, err)
	}
	return 0
}

// serviceState is the OS service's state as `herald status` reports it.
type serviceState struct {
	Name     string `json:"name"`
	Platform string `json:"platform,omitempty"`
	State    string `json:"state"` // not installed, stopped, running, unknown
	Error    string `json:"error,omitempty"`
}

func queryService(name string, user bool) serviceState {
	st := serviceState{Name: name, State: platform.StatusUnknown.String()}
	svc, err := platform.NewService(serviceOptions(name, user), nil)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	st.Platform = svc.Platform()
	s, err := svc.Status()
	st.State = s.String()
	if err != nil {
		st.Error = err.Error()
	}
	return st
}

// statusReport is `herald status --json`: the daemon's status, when it
// answers, with the OS service's state beside it.
type statusReport struct {
	ServiceState serviceState `json:"os_service"`
	Daemon       bool         `json:"daemon_running"`
	// SystemDaemon is set when no daemon answered on the socket asked
	// and the system daemon's socket exists.
	SystemDaemon *systemDaemon `json:"system_daemon,omitempty"`
	*app.Status
}

// systemDaemon is what a user who finds no daemon of their own learns of
// the system one: where its socket is and whether they may use it.
type systemDaemon struct {
	Socket string `json:"socket"`
	// State is "answers", "permission denied" (the socket is not the
	// user's, and they are not in its group) or "no answer".
	State string `json:"state"`
}

// The states of systemDaemon.
const (
	systemAnswers = "answers"
	systemDenied  = "permission denied"
	systemSilent  = "no answer"
)

// systemSocket is the system daemon's socket; tests point it elsewhere.
var systemSocket = func() string { return platform.DefaultPaths(false).Socket }

// probeSystemDaemon looks for the system daemon when none answered on
// tried: a normal user's commands default to their own socket, so a
// system service running is otherwise reported as "not running".
func probeSystemDaemon(ctx context.Context, tried string) *systemDaemon {
	sock := systemSocket()
	if filepath.Clean(sock) == filepath.Clean(tried) {
		return nil
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
		return nil
	}
	sd := &systemDaemon{Socket: sock, State: systemSilent}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			sd.State = systemDenied
		}
		return sd
	}
	c.Close()
	if _, err := app.NewClient(sock).Status(ctx); err == nil {
		sd.State = systemAnswers
	}
	return sd
}

// systemDaemonHint says how to reach the system daemon.
func systemDaemonHint(sd *systemDaemon) string {
	switch sd.State {
	case systemAnswers:
		return fmt.Sprintf("system daemon: answers on %s; talk to it with --socket %s or HERALD_SOCKET=%s\n", sd.Socket, sd.Socket, sd.Socket)
	case systemDenied:
		return fmt.Sprintf("system daemon: its socket %s is there, but you may not use it: it is only for the daemon's user\n"+
			"  (mode 0600) unless the daemon runs with --socket-group GROUP (socket_group) and you are in GROUP:\n"+
			"  sudo usermod -aG GROUP $USER, log in again, then --socket %s or HERALD_SOCKET=%s\n", sd.Socket, sd.Socket, sd.Socket)
	}
	return fmt.Sprintf("system daemon: its socket %s is there but nothing answers (a daemon that crashed, or still starting)\n", sd.Socket)
}

// statusCmd reports whether the service is installed and running and, if
// the daemon answers, its link state. It exits 0 when the daemon answers,
// 3 when it does not.
func statusCmd(args []string, stdout, stderr io.Writer) int {
	sf := newServiceFlags("status", "herald status [--user] [--name NAME] [--socket PATH] [--device NAME] [--json]")
	paths := platform.DefaultPaths(userMode())
	socketFlag := sf.fs.String("socket", "", fmt.Sprintf("the daemon's local API socket (env %s; default %s, or %s with --device)",
		platform.EnvSocket, paths.Socket, emulatorSocket(paths)))
	sf.fs.String("device", os.Getenv(EnvDevice), "emulated phone to talk to, with herald emulate (env "+EnvDevice+")")
	asJSON := sf.fs.Bool("json", false, "print JSON")
	pos, code, ok := cli.ParseCommand(sf.fs, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 0 {
		fmt.Fprintln(stderr, "usage: "+cli.Usage(sf.fs))
		return 2
	}
	socket := clientSocket(sf.fs, *socketFlag)
	svcState := queryService(*sf.name, *sf.user)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := newClient(sf.fs, socket).Status(ctx)
	if err != nil && !errors.Is(err, app.ErrDaemonUnavailable) {
		return cliError(stderr, "status", err)
	}
	answered := err == nil
	var sd *systemDaemon
	if !answered {
		sd = probeSystemDaemon(ctx, socket)
	}
	if *asJSON {
		rep := statusReport{ServiceState: svcState, Daemon: answered, SystemDaemon: sd}
		if answered {
			rep.Status = &st
		}
		printJSON(stdout, rep)
	} else {
		printStatus(stdout, svcState, socket, answered, st, sd)
	}
	if !answered {
		return 3
	}
	return 0
}

func printStatus(w io.Writer, svc serviceState, socket string, answered bool, st app.Status, sd *systemDaemon) {
	// The daemon comes first: it is what a user asks about, and a daemon
	// run in a terminal has no OS service at all.
	if !answered {
		fmt.Fprintf(w, "daemon:      not running (no answer on %s)\n", socket)
	}
	line := fmt.Sprintf("os service:  %s: %s", svc.Name, svc.State)
	if svc.Platform != "" {
		line += " (" + svc.Platform + ")"
	}
	if svc.Error != "" {
		line += "; " + svc.Error
	}
	if answered && svc.State == platform.StatusNotInstalled.String() {
		line = fmt.Sprintf("os service:  %s: not installed; the daemon runs outside the service manager (herald run or herald emulate)", svc.Name)
	}
	if !answered {
		fmt.Fprintln(w, line)
		if sd != nil {
			fmt.Fprint(w, systemDaemonHint(sd))
			if sd.State == systemAnswers {
				return
			}
		}
		fmt.Fprint(w, notRunningHint)
		return
	}
	state := orDash(st.State)
	switch {
	case st.State == app.StateOffline:
		state = "offline (held by the emulator/UI; switch connectivity back on there)"
	case st.Connected && st.Since != nil:
		state = "connected since " + st.Since.Local().Format(time.DateTime)
	case st.RetryAt != nil:
		state = "waiting, next attempt " + st.RetryAt.Local().Format(time.DateTime)
	}
	hb := st.Heartbeat
	switch {
	case st.HeartbeatProbing:
		hb += " (probing)"
	case st.HeartbeatSettled:
		hb += " (settled)"
	default:
		hb += " (learning)"
	}
	if st.HeartbeatCeiling != "" {
		hb += ", ceiling " + st.HeartbeatCeiling
	}
	probe := "-"
	if st.NextProbe != nil {
		probe = st.NextProbe.Local().Format(time.DateTime)
	}
	probe += fmt.Sprintf("; %d failed in 24 h", st.FailedProbes)
	fmt.Fprintf(w, "daemon:      running (%s)\n%s\nnotification service: %s\nlink:        %s\ndevice:      %s\nnetwork:     %s\nheartbeat:   %s\nnat idle:    %s\nnext probe:  %s\nreconnects:  %d\nwakeups/h:   %d (heartbeats %d, reconnects %d, acks %d)\npower:       %s\nchannels:    %d\nrunning:     %s\n",
		socket, line, st.Service, state, orDash(st.DeviceID), orDash(st.Network), hb, orDash(st.LearnedIdle), probe, st.Reconnects,
		st.Wakeups.Total, st.Wakeups.Heartbeats, st.Wakeups.Reconnects, st.Wakeups.Acks,
		st.Power, st.Channels, orDash(strings.Join(st.Running, ", ")))
	if st.LastError != "" {
		fmt.Fprintf(w, "last error:  %s\n", st.LastError)
	}
	keys := sortedKeys(st.Counters)
	width := 12
	for _, k := range keys {
		width = max(width, len(k)+1)
	}
	for _, k := range keys {
		fmt.Fprintf(w, "%-*s %d\n", width, k+":", st.Counters[k])
	}
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
