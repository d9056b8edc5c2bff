//go:build !linux

package channel

import "context"

// CurrentNetwork names the network the device is on. Outside Linux every
// network is one: the learned heartbeat is kept for the device as a whole.
func CurrentNetwork(ctx context.Context) (string, error) { return "default", nil }

// WatchNetwork is Linux-only; elsewhere it waits for ctx and reports
// nothing, and reconnects rely on backoff alone.
func WatchNetwork(ctx context.Context, up func()) error {
	<-ctx.Done()
	return nil
}
