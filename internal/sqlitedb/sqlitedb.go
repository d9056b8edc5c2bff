// Package sqlitedb opens Herald's SQLite databases (the device daemon's in
// package storage, the notification service's in server/store/sqlitestore)
// the one way both need: WAL, immediate transactions, full fsync, files
// only their owner reads, and numbered migrations each package embeds for
// its own schema alone.
package sqlitedb

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"net/url"
	"sort"
	"strconv"
	"strings"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// Open opens a SQLite database in WAL mode with immediate transactions (so
// two writers never deadlock upgrading a read lock) and full fsync on commit
// (so a commit that returned survives power loss, not just a crash).
//
// migrations holds the schema's NNNN_name.sql files at its root.
func Open(ctx context.Context, file string, migrations fs.FS) (*sql.DB, error) {
	if err := createPrivate(file); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("_txlock", "immediate")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", "10000")
	q.Set("_foreign_keys", "on")
	dsn := "file:" + file + "?" + q.Encode()
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: open %s: %w", file, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitedb: open %s: %w", file, err)
	}
	if err := migrate(ctx, db, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitedb: migrate %s: %w", file, err)
	}
	return db, nil
}

// OpenReader opens a pool of read-only connections to a database Open
// has already created and migrated. In WAL mode readers see the last
// commit and neither wait for nor block the writer. The pool keeps its
// connections: opening a SQLite connection costs far more than a query,
// and database/sql otherwise keeps only two idle.
func OpenReader(ctx context.Context, file string, conns int) (*sql.DB, error) {
	q := url.Values{}
	q.Set("_query_only", "true")
	q.Set("_busy_timeout", "10000")
	db, err := sql.Open("sqlite3", "file:"+file+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlitedb: open %s for reading: %w", file, err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlitedb: open %s for reading: %w", file, err)
	}
	return db, nil
}

// migrate applies the NNNN_*.sql files above the database's user_version,
// each in its own transaction together with the version bump.
func migrate(ctx context.Context, db *sql.DB, migrations fs.FS) error {
	entries, err := fs.ReadDir(migrations, ".")
	if err != nil {
		return err
	}
	type step struct {
		n    int
		file string
	}
	var steps []step
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return fmt.Errorf("bad migration name %q", e.Name())
		}
		steps = append(steps, step{n, e.Name()})
	}
	sort.Slice(steps, func(i, j int) bool { return steps[i].n < steps[j].n })

	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if len(steps) > 0 && version > steps[len(steps)-1].n {
		return fmt.Errorf("database is at version %d, newer than this program (%d)", version, steps[len(steps)-1].n)
	}
	for _, s := range steps {
		if s.n <= version {
			continue
		}
		body, err := fs.ReadFile(migrations, s.file)
		if err != nil {
			return err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("%s: %w", s.file, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", s.n)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}
