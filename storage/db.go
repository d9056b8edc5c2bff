// Package storage is the device daemon's database: every SQL statement of
// the phone side (identity, channels, tiles, toasts, the raw log, handler
// jobs, UnifiedPush), SQLite through mattn/go-sqlite3 with embedded,
// numbered migrations. The notification service's database is a package
// of its own, server/store/sqlitestore.
package storage

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"io/fs"

	"github.com/heraldpush/herald/internal/sqlitedb"
)

//go:embed migrations/device
var migrations embed.FS

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("storage: not found")

// open opens the device database, migrated to this program's schema.
func open(ctx context.Context, file string) (*sql.DB, error) {
	sub, err := fs.Sub(migrations, "migrations/device")
	if err != nil {
		return nil, err
	}
	return sqlitedb.Open(ctx, file, sub)
}

// jsonList is a string list as a column holds it: a JSON array, never null.
func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}
