//go:build cgo

package main

import (
	"context"
	"log/slog"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// sqliteBuilt: this heraldsvc carries the SQLite store (go-sqlite3 needs
// cgo).
const sqliteBuilt = true

// openSQLite opens the single-node store in file.
func openSQLite(ctx context.Context, file string, log *slog.Logger) (store.Store, error) {
	s, err := sqlitestore.Open(ctx, file, sqlitestore.Options{GroupCommit: true})
	if err != nil {
		return nil, err
	}
	log.Info("store in SQLite", "db", file)
	return s, nil
}
