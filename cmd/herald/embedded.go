package main

import (
	"context"
	"path/filepath"

	"github.com/heraldpush/herald/server"
	"github.com/heraldpush/herald/server/store/sqlitestore"
)

// startEmbedded starts the notification service herald runs when no
// --service is given: one node, its store in SQLite (heraldsvc.db in
// dataDir). The service runs the store and closes it.
func startEmbedded(ctx context.Context, dataDir string, cfg server.ServeConfig) (*server.Service, error) {
	st, err := sqlitestore.Open(ctx, filepath.Join(dataDir, "heraldsvc.db"), sqlitestore.Options{GroupCommit: true})
	if err != nil {
		return nil, err
	}
	cfg.Store = st
	return server.Start(ctx, cfg)
}
