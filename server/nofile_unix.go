//go:build unix

package server

import "syscall"

// nofileLimit is the process's descriptor limit (its soft RLIMIT_NOFILE),
// or 0 when it cannot be read or is unlimited.
func nofileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur > 1<<40 {
		return 0
	}
	return uint64(r.Cur)
}
