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
