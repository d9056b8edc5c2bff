//go:build !unix

package daemon

func umask(mask int) int { return 0 }
