//go:build unix

package daemon

import (
	"os/exec"
	"syscall"
)

// killProcessGroup starts the handler in its own process group and makes
// cancellation kill the whole group, so a shell script's children die with
// it instead of outliving their timeout.
func killProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
