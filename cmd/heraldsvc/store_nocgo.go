//go:build !cgo

package main

import (
	"context"
	"log/slog"

	"github.com/heraldpush/herald/server/store"
)

// sqliteBuilt: a build without cgo has no SQLite store (go-sqlite3 is a
// cgo package); it keeps its store on NATS only.
const sqliteBuilt = false

func openSQLite(context.Context, string, *slog.Logger) (store.Store, error) {
	return nil, errNoSQLite
}
