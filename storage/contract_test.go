package storage_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/heraldpush/herald/server/store"
	"github.com/heraldpush/herald/server/store/storetest"
	"github.com/heraldpush/herald/storage"
)

func TestServiceStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := storage.OpenService(context.Background(), filepath.Join(t.TempDir(), "svc.db"), storage.ServiceOptions{GroupCommit: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
