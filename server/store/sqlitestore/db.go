// Package sqlitestore keeps the notification service's store in one
// SQLite database (mattn/go-sqlite3, so a cgo build): the store of a
// single node, and of the service the herald daemon embeds. Its sibling
// natsstore keeps the same contract (package store) on NATS JetStream for
// a cluster; server/store/storetest is the suite both pass.
//
// Every write goes through one committer goroutine on one connection,
// which Run drives: concurrent requests share a transaction and its fsync
// (group commit). Reads use a pool of read-only connections beside it.
// Being the only writer, the committer keeps notes of what it wrote
// (notes.go: devices' numbers, named notifications queued, outcomes per
// channel) so that a transaction reads back as little as it can.
package sqlitestore

import (
	"context"
	"database/sql"
	"embed"
	"io/fs"

	"github.com/heraldpush/herald/internal/sqlitedb"
	"github.com/heraldpush/herald/server/store"
)

//go:embed migrations
var migrations embed.FS

// ErrNotFound is store.ErrNotFound, so callers need not know the backend.
var ErrNotFound = store.ErrNotFound

// open opens the service database, migrated to this program's schema.
func open(ctx context.Context, file string) (*sql.DB, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	return sqlitedb.Open(ctx, file, sub)
}

func openReader(ctx context.Context, file string, conns int) (*sql.DB, error) {
	return sqlitedb.OpenReader(ctx, file, conns)
}
