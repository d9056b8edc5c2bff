package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kardianos/service"
)

// ServiceOptions describe the daemon as an OS service.
type ServiceOptions struct {
	Name        string   // "herald"; letters, digits and "-_.@"
	DisplayName string   // shown by service managers that have one (Windows)
	Description string   // one line
	Executable  string   // path of the binary; "" = os.Executable()
	Arguments   []string // e.g. ["run", "--data", "/var/lib/herald"]
	User        bool     // per-user service (systemd user unit / launchd agent)
	RunAs       string   // dedicated system user, when given (system service only)
	// CopyFrom, when set, is the binary install copies to Executable
	// (atomically) before registering the service, so that the service
	// runs a copy of its own (ServiceBinary) rather than a build that a
	// rebuild or `git clean` may remove; uninstall removes that copy.
	CopyFrom string
	// LogDirectory is where System V and launchd append the daemon's
	// standard output and error (<name>.log and <name>.err under System V);
	// "" = the library's default, /var/log. systemd sends them to the
	// journal instead.
	LogDirectory string
}

// ServiceStatus is the state of the installed service.
type ServiceStatus int

// The states Status reports.
const (
	StatusUnknown ServiceStatus = iota
	StatusNotInstalled
	StatusStopped
	StatusRunning
)

func (s ServiceStatus) String() string {
	switch s {
	case StatusNotInstalled:
		return "not installed"
	case StatusStopped:
		return "stopped"
	case StatusRunning:
		return "running"
	}
	return "unknown"
}

// Errors from service control.
var (
	ErrInvalidServiceName = errors.New("invalid service name")
	ErrInvalidRunAs       = errors.New("invalid user name")
	// ErrUnsafeArgument is returned when the executable path or an argument
	// cannot be written into the service manager's file without changing its
	// meaning (a line break in a systemd unit; a space or shell character in
	// a System V script, which the library's script would split or expand).
	ErrUnsafeArgument = errors.New("cannot be written safely into the service file")
	// ErrRunAsUserService is returned when RunAs is combined with User.
	ErrRunAsUserService = errors.New("a user service cannot run as another user")
	// ErrRunAsUnsupported is returned by install when the service manager
	// cannot start the daemon as RunAs (System V).
	ErrRunAsUnsupported = errors.New("this service manager cannot run the service as another user")
	ErrUnknownAction    = errors.New("unknown service action")
	ErrNoRun            = errors.New("service has no run function")
	// ErrUserServiceUnsupported is returned for a per-user service under
	// System V init, which runs services as root only.
	ErrUserServiceUnsupported = errors.New("per-user services need systemd or launchd")
	// ErrNeedsRoot is returned when a user other than root controls a
	// system service on Unix.
	ErrNeedsRoot = errors.New("controlling a system service needs root")
	// ErrNoServiceCommand is returned when System V's service(8) command,
	// through which services are started and stopped, is missing.
	ErrNoServiceCommand = errors.New(`the "service" command is missing`)
	ErrAlreadyInstalled = errors.New("service already installed")
	ErrNotInstalled     = errors.New("service not installed")
	// ErrStopTimeout is returned by Run when run did not return within
	// StopGrace of the stop request.
	ErrStopTimeout = errors.New("daemon did not stop in time")
)

// StopGrace is how long Run waits, after the service manager asks it to
// stop, for run to return. Service managers wait about this long before
// they kill (Windows' default is 20 s; the System V script gives up after
// 10 s but the process still finishes its shutdown).
const StopGrace = 15 * time.Second

var (
	serviceNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.@-]*$`)
	userNameRE    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$`)
)

func (o ServiceOptions) validate() error {
	if !serviceNameRE.MatchString(o.Name) {
		return fmt.Errorf("%w %q", ErrInvalidServiceName, o.Name)
	}
	if o.RunAs != "" {
		if o.User {
			return ErrRunAsUserService
		}
		if !userNameRE.MatchString(o.RunAs) {
			return fmt.Errorf("%w %q", ErrInvalidRunAs, o.RunAs)
		}
	}
	return nil
}

func (o ServiceOptions) executable() (string, error) {
	exe := o.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return "", fmt.Errorf("service executable: %w", err)
		}
	}
	// Service managers start the daemon from another working directory.
	abs, err := filepath.Abs(exe)
	if err != nil {
		return "", fmt.Errorf("service executable: %w", err)
	}
	return abs, nil
}

// Service runs the daemon under the OS service manager and controls its
// installation. It wraps kardianos/service.
type Service struct {
	opts ServiceOptions
	exe  string
	run  func(ctx context.Context) error
	svc  service.Service
	log  *slog.Logger

	mu       sync.Mutex
	cancel   context.CancelFunc
	done     chan struct{}  // closed when run has returned
	sig      chan os.Signal // SIGINT and SIGTERM, from Start on
	runErr   error
	stopping bool
}

// stopGrace is StopGrace, shortened by tests.
var stopGrace = StopGrace

// NewService prepares a service; it neither installs nor starts anything.
// run may be nil for a Service used only for Control and Status.
func NewService(opts ServiceOptions, run func(ctx context.Context) error) (*Service, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("new service: %w", err)
	}
	exe, err := opts.executable()
	if err != nil {
		return nil, fmt.Errorf("new service: %w", err)
	}
	s := &Service{opts: opts, exe: exe, run: run, log: slog.Default().With("service", opts.Name)}
	kv := service.KeyValue{
		"UserService": opts.User,
		"RunWait":     s.waitForStop,
		// launchd: start at load (boot or login) and restart after a crash.
		"RunAtLoad": true,
		"KeepAlive": true,
		// Windows: restart 5 s after a failure, like the systemd unit, and
		// start after boot once the network stack is up.
		"OnFailure":              "restart",
		"OnFailureDelayDuration": "5s",
		"DelayedAutoStart":       !opts.User,
	}
	if opts.LogDirectory != "" {
		kv["LogDirectory"] = opts.LogDirectory
	}
	if runtime.GOOS == "linux" {
		unit, err := renderSystemdUnit(opts, exe)
		if err != nil {
			return nil, fmt.Errorf("new service: %w", err)
		}
		kv["SystemdScript"] = unit
	}
	cfg := &service.Config{
		Name:        opts.Name,
		DisplayName: opts.DisplayName,
		Description: opts.Description,
		UserName:    opts.RunAs,
		Executable:  exe,
		Arguments:   opts.Arguments,
		Option:      kv,
	}
	svc, err := service.New((*program)(s), cfg)
	if err != nil {
		return nil, fmt.Errorf("new service: %w", err)
	}
	s.svc = svc
	return s, nil
}

// Interactive reports whether the process was started from a terminal (or
// a container) rather than by the OS service manager.
func Interactive() bool { return service.Interactive() }

// Platform returns kardianos' name for the service manager, e.g.
// "linux-systemd", "unix-systemv", "darwin-launchd", "windows-service".
func (s *Service) Platform() string { return s.svc.Platform() }

// Run blocks, calling run(ctx). ctx is cancelled when the service manager
// asks the daemon to stop, or on SIGINT or SIGTERM (also when running
// interactively). Run returns run's error; a run that returns
// context.Canceled after being asked to stop has stopped cleanly and Run
// returns nil.
func (s *Service) Run() error {
	if s.run == nil {
		return ErrNoRun
	}
	if service.Interactive() {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := s.run(ctx)
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = nil
		}
		return err
	}
	err := s.svc.Run()
	s.mu.Lock()
	runErr := s.runErr
	s.mu.Unlock()
	return errors.Join(runErr, err)
}

// waitForStop is kardianos' RunWait on Unix: it returns when the daemon
// should stop, either because it was told to or because run ended on its
// own (so that Run returns instead of waiting for a signal that will never
// come).
func (s *Service) waitForStop() {
	s.mu.Lock()
	done, sig := s.done, s.sig
	s.mu.Unlock()
	defer signal.Stop(sig)
	select {
	case got := <-sig:
		s.log.Info("stop requested", "signal", got.String())
	case <-done:
	}
}

// program is the kardianos/service Interface of a Service.
type program Service

func (p *program) Start(service.Service) error {
	s := (*Service)(p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	// Signals are caught from here on, not only once kardianos calls
	// waitForStop, so a SIGTERM during start-up stops the daemon cleanly.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	s.mu.Lock()
	s.cancel, s.done, s.sig, s.stopping, s.runErr = cancel, done, sig, false, nil
	s.mu.Unlock()
	go func() {
		err := s.run(ctx)
		s.mu.Lock()
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = nil
		}
		s.runErr = err
		stopping := s.stopping
		s.mu.Unlock()
		close(done)
		if !stopping {
			s.endedEarly(err)
		}
	}()
	return nil
}

func (p *program) Stop(service.Service) error {
	s := (*Service)(p)
	s.mu.Lock()
	s.stopping = true
	cancel, done, sig := s.cancel, s.done, s.sig
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	signal.Stop(sig)
	cancel()
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return fmt.Errorf("%w (waited %s)", ErrStopTimeout, stopGrace)
	}
}

// endedEarly handles run returning before anyone asked it to stop. On Unix
// waitForStop notices and Run returns. The Windows service control loop
// only ends on a control request, so there the process exits: with status 1
// after an error, so that the failure actions restart it, and through a
// stop request otherwise.
func (s *Service) endedEarly(err error) {
	if runtime.GOOS != "windows" {
		return
	}
	if err != nil {
		s.log.Error("daemon failed", "err", err)
		os.Exit(1)
	}
	if err := s.svc.Stop(); err != nil {
		s.log.Error("stop after the daemon ended", "err", err)
		os.Exit(0)
	}
}

// Control installs, uninstalls, starts, stops or restarts the service:
// action is "install", "uninstall", "start", "stop" or "restart". Errors
// are wrapped with the action. Installing under System V checks that the
// library's init script can carry the executable and arguments unchanged,
// and uninstalling also removes the /etc/rc?.d links that install made.
// Uninstall does not stop a running service.
func (s *Service) Control(action string) error {
	// An action that does not exist is the caller's mistake whoever runs
	// it, so it is named before asking whether this user may act.
	switch action {
	case "install", "uninstall", "start", "stop", "restart":
	default:
		return fmt.Errorf("service %s: %w %q", s.opts.Name, ErrUnknownAction, action)
	}
	if err := checkControl(s.Platform(), s.opts, os.Geteuid(), action, exec.LookPath); err != nil {
		return fmt.Errorf("%s service %s: %w", action, s.opts.Name, err)
	}
	var err error
	switch action {
	case "install":
		err = s.install()
	case "uninstall":
		err = s.uninstall()
	case "start":
		err = s.svc.Start()
	case "stop":
		err = s.svc.Stop()
	case "restart":
		err = s.svc.Restart()
	}
	if err != nil {
		return fmt.Errorf("%s service %s: %w", action, s.opts.Name, err)
	}
	return nil
}

// checkControl refuses, before trying, what the service manager would
// refuse with a message that does not say what to do instead. euid is -1
// on Windows.
func checkControl(platform string, o ServiceOptions, euid int, action string, lookPath func(string) (string, error)) error {
	script := "/etc/init.d/" + o.Name
	instead := "run the daemon under your own supervisor instead: herald run (in a terminal, tmux, or your session's autostart)"
	switch {
	case platform == platformSysV && o.User:
		return fmt.Errorf("%w; this machine uses System V init (%s), which runs services as root only.\n"+
			"  Install the system service as root (sudo herald install), or %s.\n"+
			"  On a machine with systemd, herald install --user --print shows the unit", ErrUserServiceUnsupported, platform, instead)
	case !o.User && euid > 0 && (platform == platformSysV || strings.HasPrefix(platform, "linux-") || strings.HasPrefix(platform, "darwin-")):
		return fmt.Errorf("%w (you are uid %d).\n  Run it with sudo, install a per-user service with --user where systemd or launchd runs, or %s",
			ErrNeedsRoot, euid, instead)
	case platform == platformSysV && (action == "start" || action == "stop" || action == "restart"):
		if _, err := lookPath("service"); err != nil {
			return fmt.Errorf("%w.\n  Run the init script directly: %s %s (as root), or %s", ErrNoServiceCommand, script, action, instead)
		}
	}
	return nil
}

func (s *Service) install() error {
	if s.Platform() == platformSysV {
		if s.opts.RunAs != "" {
			return ErrRunAsUnsupported
		}
		if err := sysvSafe(s.exe, s.opts.Arguments); err != nil {
			return err
		}
	}
	if st, err := s.Status(); err == nil && st != StatusNotInstalled {
		return ErrAlreadyInstalled
	}
	if s.opts.CopyFrom != "" {
		if err := copyBinary(s.opts.CopyFrom, s.exe); err != nil {
			return err
		}
	}
	return s.svc.Install()
}

func (s *Service) uninstall() error {
	if st, err := s.Status(); err == nil && st == StatusNotInstalled {
		return ErrNotInstalled
	}
	if err := s.svc.Uninstall(); err != nil {
		return err
	}
	if s.Platform() == platformSysV {
		if err := removeSysvLinks(sysvEtc, s.opts.Name); err != nil {
			return err
		}
	}
	if s.opts.CopyFrom != "" {
		if err := removeBinary(s.exe); err != nil {
			// Windows keeps a running executable: uninstalling from the
			// service's own copy leaves it behind, and says so.
			return fmt.Errorf("the service is uninstalled, but its copy of the binary is left: %w", err)
		}
	}
	return nil
}

// Status reports whether the service is installed and running. A service
// that is not installed is StatusNotInstalled with a nil error.
func (s *Service) Status() (ServiceStatus, error) {
	if s.Platform() == platformSysV {
		// The library treats the script's "Stopped" (exit status 1) as a
		// failure, so System V is asked directly.
		st, err := sysvStatus(sysvEtc, s.opts.Name)
		if err != nil {
			return StatusUnknown, fmt.Errorf("service %s status: %w", s.opts.Name, err)
		}
		return st, nil
	}
	st, err := s.svc.Status()
	switch {
	case errors.Is(err, service.ErrNotInstalled):
		return StatusNotInstalled, nil
	case err != nil:
		return StatusUnknown, fmt.Errorf("service %s status: %w", s.opts.Name, err)
	}
	switch st {
	case service.StatusRunning:
		return StatusRunning, nil
	case service.StatusStopped:
		return StatusStopped, nil
	}
	return StatusUnknown, nil
}
