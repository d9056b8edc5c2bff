package sqlitedb_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/heraldpush/herald/internal/sqlitedb"
)

func schema(files ...string) fstest.MapFS {
	m := fstest.MapFS{}
	for _, f := range files {
		m[f] = &fstest.MapFile{Data: []byte("CREATE TABLE t" + strings.TrimSuffix(strings.SplitN(f, "_", 2)[0], ".sql") + " (x INTEGER);")}
	}
	return m
}

// TestOpenMigrates: each package's own migrations are applied in number
// order once; a database written by a newer program is refused rather
// than used; a misnamed migration is refused; the file is its owner's
// alone.
func TestOpenMigrates(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "x.db")
	db, err := sqlitedb.Open(ctx, file, schema("0002_b.sql", "0001_a.sql"))
	if err != nil {
		t.Fatal(err)
	}
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != 2 {
		t.Fatalf("user_version %d %v, want 2", v, err)
	}
	db.Close()
	if runtime.GOOS != "windows" {
		st, err := os.Stat(file)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v %v, want 0600", st.Mode().Perm(), err)
		}
	}
	// Reopened with the same migrations: nothing is applied twice (a
	// second CREATE TABLE would fail).
	db, err = sqlitedb.Open(ctx, file, schema("0001_a.sql", "0002_b.sql"))
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	db.Close()
	if _, err := sqlitedb.Open(ctx, file, schema("0001_a.sql")); err == nil || !strings.Contains(err.Error(), "newer than this program") {
		t.Fatalf("an older program opened a newer database: %v", err)
	}
	if _, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "y.db"), schema("first.sql")); err == nil || !strings.Contains(err.Error(), "bad migration name") {
		t.Fatalf("a misnamed migration: %v", err)
	}
}
