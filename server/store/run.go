package store

import (
	"context"
	"time"
)

// Runner is a part of the service with work of its own in the background
// (a store's committer, the flusher of lazy acks). Its constructor starts
// no goroutine: Run does the work until ctx ends, then finishes what it
// holds (lazy acks are applied) and returns. The service's owner runs it
// and decides the order parts stop in (server.Service.Run).
type Runner interface {
	Run(ctx context.Context) error
}

// CommitReporter is a store that can tell how its durable writes go: for
// every commit, how many requests it carried (a SQLite group transaction
// carries many, a publish to NATS one), how long it took until durable,
// and its error. f runs on the store's write path, so it must be quick.
type CommitReporter interface {
	ReportCommits(f func(requests int, took time.Duration, err error))
}
