package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// LastEventID is the highest event id the database has ever given (to any
// app of any phone), 0 if none: ids only grow (AUTOINCREMENT), so every
// event queued later has a higher one.
func (s *DeviceStore) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'events'`).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("storage: last event id: %w", err)
	}
	return id, nil
}
