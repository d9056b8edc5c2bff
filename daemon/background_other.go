//go:build !unix

package daemon

import "os/exec"

// killProcessGroup leaves the default: cancellation kills the process.
func killProcessGroup(*exec.Cmd) {}
