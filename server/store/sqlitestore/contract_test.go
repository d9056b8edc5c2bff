package sqlitestore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/sqlitestore"
	"github.com/heraldpush/herald/server/store/storetest"
)

func TestServiceStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := sqlitestore.Open(context.Background(), filepath.Join(t.TempDir(), "svc.db"), sqlitestore.Options{GroupCommit: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// The concurrent replacement cases, full queue included, over two stores
// on one database file: a SQLite service is one node, but its merges are
// settled by the database's transactions, not by the process, so they
// hold across two as the cluster's do across nodes.
func TestServiceStoreContractNodes(t *testing.T) {
	storetest.RunNodes(t, 2, func(t *testing.T, n int) []store.Store {
		file := filepath.Join(t.TempDir(), "svc.db")
		var out []store.Store
		for range n {
			s, err := sqlitestore.Open(context.Background(), file, sqlitestore.Options{GroupCommit: true})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	})
}
