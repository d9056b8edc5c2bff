package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// spawned is a heraldsvc process the tool started, so that RSS and CPU are
// the service's alone rather than shared with the simulated devices.
type spawned struct {
	cmd  *exec.Cmd
	url  string
	done chan error
}

// spawnService starts bin as `heraldsvc serve` on a loopback port with a
// database in dir and every quota and rate off, and waits for it to say
// where it listens.
func spawnService(ctx context.Context, bin, dir string, stderr io.Writer) (*spawned, error) {
	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "heraldsvc.db"),
		"--log-level", "warn", "--daily-quota", "-1", "--channel-rate", "-1", "--sender-rate", "-1",
		"--max-in-flight", "65536", "--slow-store", "1h", "--max-pending-hellos-per-source", "-1", "--max-pending-hellos", "-1")
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting %s: %w", bin, err)
	}
	sp := &spawned{cmd: cmd, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		// Drain so the service never blocks writing to a full pipe.
		io.Copy(io.Discard, out)
		sp.done <- cmd.Wait()
	}()
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		select {
		case line := <-lines:
			// "heraldsvc listening on ADDR (channel URIs under URL)"
			if _, rest, ok := strings.Cut(line, "channel URIs under "); ok {
				sp.url = strings.TrimSuffix(rest, ")")
				return sp, nil
			}
		case err := <-sp.done:
			return nil, fmt.Errorf("bench: %s exited before listening: %v", bin, err)
		case <-timer.C:
			sp.stop()
			return nil, errors.New("bench: the service did not start listening within 30 s")
		case <-ctx.Done():
			sp.stop()
			return nil, ctx.Err()
		}
	}
}

func (sp *spawned) pid() int { return sp.cmd.Process.Pid }

// stop asks the service to shut down and waits for it, killing it if it
// takes longer than its own shutdown should.
func (sp *spawned) stop() {
	sp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-sp.done:
	case <-time.After(30 * time.Second):
		sp.cmd.Process.Kill()
		<-sp.done
	}
}
