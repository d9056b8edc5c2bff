package daemon

import (
	"github.com/heraldpush/herald/channel"
	"github.com/heraldpush/herald/storage"
)

// LinkHandler is the daemon as its link sees it, so tests and benchmarks
// can hand it notify batches exactly as the link does.
func LinkHandler(d *Daemon) channel.Handler { return (*linkHandler)(d) }

// StoreForTest exposes the device database to the package's external
// tests, which check what was committed.
func (d *Daemon) StoreForTest() *storage.DeviceStore { return d.store }
