package daemon

import "github.com/heraldpush/herald/channel"

// LinkHandler is the daemon as its link sees it, so tests and benchmarks
// can hand it notify batches exactly as the link does.
func LinkHandler(d *Daemon) channel.Handler { return (*linkHandler)(d) }
