package daemon

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldpush/herald/platform"
	"github.com/heraldpush/herald/storage"
	"github.com/heraldpush/herald/wire"
)

// Background handlers run an app's command for a raw notification that
// arrives while the app is not running (what WNS background tasks added to
// MPNS, which simply dropped it).
//
// Delivery is at least once, at most twice: the job is written in the
// transaction that applies the notification, so every applied notification
// has exactly one job, and a job is deleted only after its command ended.
// A job whose run a crash or a daemon stop interrupted runs once more when
// the daemon starts again; one interrupted twice is abandoned and counted.
// A command that fails or times out is logged and counted, never retried:
// its exit status is the app's answer.

// Defaults and limits of background handlers.
const (
	// DefaultHandlerConcurrency bounds how many handler commands run at
	// once, so a burst of raw notifications cannot fork a process each.
	DefaultHandlerConcurrency = 4
	// DefaultHandlerBacklog bounds one app's queued jobs, so a handler
	// slower than its notifications cannot grow the database without end.
	DefaultHandlerBacklog = 100
	// HandlerMaxAttempts is how many times a job's command may be started:
	// the run itself and one more after an interruption.
	HandlerMaxAttempts = 2
	// handlerOutputLimit bounds the output kept for the log.
	handlerOutputLimit = 4 << 10
	// handlerWaitDelay is how long, after the command was killed, its
	// output pipes may stay open (held by a grandchild) before they are
	// closed under it.
	handlerWaitDelay = 2 * time.Second
)

// Counters of background handler runs.
const (
	CountHandlerQueued    = "handler_queued"
	CountHandlerOverflow  = "handler_overflow" // dropped: the app's backlog was full
	CountHandlerOK        = "handler_ok"
	CountHandlerFailed    = "handler_failed"
	CountHandlerTimeouts  = "handler_timeouts"
	CountHandlerAbandoned = "handler_abandoned"
	// CountHandlerMissing counts jobs whose app no longer has a handler in
	// the configuration when their turn comes.
	CountHandlerMissing = "handler_missing"
)

// Environment variables a handler command gets, besides the daemon's own.
const (
	EnvHandlerApp       = "HERALD_APP"
	EnvHandlerMessageID = "HERALD_MESSAGE_ID"
	EnvHandlerSocket    = "HERALD_SOCKET"
)

// rawNotRunning is apply's answer to a raw notification for an app that is
// not running: a job for the app's background handler, queued in the apply
// transaction, or a drop.
func (d *Daemon) rawNotRunning(tx *storage.ApplyTx, appID string, n wire.Notification) (queued bool, err error) {
	if _, ok := d.cfg.Handlers[appID]; !ok {
		return false, tx.Count(CountRawDropped, 1)
	}
	backlog, err := tx.HandlerBacklog(appID)
	if err != nil {
		return false, err
	}
	if backlog >= d.cfg.HandlerBacklog {
		d.log.Warn("background handler backlog full; raw notification dropped", "app", appID, "message_id", n.MessageID, "backlog", backlog)
		return false, tx.Count(CountHandlerOverflow, 1)
	}
	if err := tx.AddHandlerJob(appID, n.MessageID, n.Seq, n.Body); err != nil {
		return false, err
	}
	if err := tx.Count(CountHandlerQueued, 1); err != nil {
		return false, err
	}
	// The runner claims jobs in a write transaction, which waits for this
	// one to commit, so kicking it before the commit cannot miss the job.
	d.bg.kick()
	return true, nil
}

// background runs queued handler jobs, at most HandlerConcurrency at once.
type background struct {
	d    *Daemon
	wake chan struct{}

	mu      sync.Mutex
	running int
	wg      sync.WaitGroup // job goroutines
}

func newBackground(d *Daemon) *background {
	return &background{d: d, wake: make(chan struct{}, 1)}
}

func (b *background) kick() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// run recovers jobs a crash interrupted and then runs jobs as they come,
// until ctx ends; it returns once every command it started has ended.
func (b *background) run(ctx context.Context) {
	defer b.wg.Wait()
	d := b.d
	retried, abandoned, err := d.store.RecoverHandlerJobs(ctx, HandlerMaxAttempts, CountHandlerAbandoned)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			d.log.Error("recovering background handler jobs failed", "err", err)
		}
	case retried > 0 || abandoned > 0:
		d.log.Warn("background handler jobs interrupted by a stop", "run_again", retried, "abandoned", abandoned)
	}
	for {
		if free := b.free(); free > 0 {
			jobs, err := d.store.ClaimHandlerJobs(ctx, free)
			if err != nil && ctx.Err() == nil {
				// The next notification or finished job tries again.
				d.log.Error("claiming background handler jobs failed", "err", err)
			}
			for _, j := range jobs {
				b.start(ctx, j)
			}
			if len(jobs) == free {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-b.wake:
		}
	}
}

func (b *background) free() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.d.cfg.HandlerConcurrency - b.running
}

func (b *background) start(ctx context.Context, j storage.HandlerJob) {
	b.mu.Lock()
	b.running++
	b.mu.Unlock()
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		b.runJob(ctx, j)
		b.mu.Lock()
		b.running--
		b.mu.Unlock()
		b.kick()
	}()
}

// runJob runs one job's command and records the outcome.
func (b *background) runJob(ctx context.Context, j storage.HandlerJob) {
	d := b.d
	log := d.log.With("app", j.App, "message_id", j.MessageID, "seq", j.Seq, "attempt", j.Attempts)
	h, ok := d.cfg.Handlers[j.App]
	if !ok || len(h.Command) == 0 {
		log.Warn("background handler job dropped: the app has no handler any more")
		b.finish(j, CountHandlerMissing, log)
		return
	}
	timeout := h.Timeout.Duration
	if timeout <= 0 {
		timeout = platform.DefaultHandlerTimeout
	}
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The timeout runs on the daemon's clock, like every other timer.
	var timedOut atomic.Bool
	timer := d.cfg.Clock.NewTimer(timeout)
	defer timer.Stop()
	go func() {
		select {
		case <-timer.C():
			timedOut.Store(true)
			cancel()
		case <-jctx.Done():
		}
	}()

	cmd := exec.CommandContext(jctx, h.Command[0], h.Command[1:]...)
	cmd.Stdin = bytes.NewReader(j.Body)
	cmd.Env = append(os.Environ(), EnvHandlerApp+"="+j.App, EnvHandlerMessageID+"="+j.MessageID, EnvHandlerSocket+"="+d.cfg.Socket)
	out := &limitedBuffer{max: handlerOutputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = handlerWaitDelay
	killProcessGroup(cmd)

	log.Debug("background handler starting", "command", h.Command)
	err := cmd.Run()
	switch {
	case timedOut.Load():
		log.Warn("background handler timed out and was killed", "timeout", timeout, "output", out.String())
		b.finish(j, CountHandlerTimeouts, log)
	case ctx.Err() != nil:
		// The daemon is stopping: the job stays queued as interrupted and
		// runs once more at the next start.
		log.Info("background handler interrupted by the daemon stopping")
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			log.Warn("background handler failed", "exit_code", ee.ExitCode(), "output", out.String())
		} else {
			log.Warn("background handler could not run", "err", err)
		}
		b.finish(j, CountHandlerFailed, log)
	default:
		log.Info("background handler done", "output", out.String())
		b.finish(j, CountHandlerOK, log)
	}
}

// finish deletes the job and counts its outcome. It does not use the run's
// context: the command has ended, and its outcome must be recorded even if
// the daemon is stopping.
func (b *background) finish(j storage.HandlerJob, counter string, log interface{ Error(string, ...any) }) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.d.store.FinishHandlerJob(ctx, j.ID, counter); err != nil {
		log.Error("recording the background handler's outcome failed", "err", err)
	}
}

// limitedBuffer keeps the first max bytes written to it and discards the
// rest, so a chatty handler cannot fill the daemon's memory.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
