package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AppOwner returns the Unix user that owns app, or ErrNotFound.
func (s *DeviceStore) AppOwner(ctx context.Context, app string) (uint32, error) {
	var uid int64
	err := s.db.QueryRowContext(ctx, `SELECT uid FROM app_owners WHERE phone = ? AND app = ?`, s.phone, app).Scan(&uid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("storage: owner of %s: %w", app, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("storage: owner of %s: %w", app, err)
	}
	return uint32(uid), nil
}

// ClaimApp makes uid the owner of app unless it has one, and returns the
// owner either way: of two users claiming at once, one wins and both learn
// which.
func (s *DeviceStore) ClaimApp(ctx context.Context, app string, uid uint32, at time.Time) (uint32, error) {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO app_owners (phone, app, uid, claimed_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (phone, app) DO NOTHING`, s.phone, app, int64(uid), at.UnixMilli()); err != nil {
		return 0, fmt.Errorf("storage: claim %s: %w", app, err)
	}
	return s.AppOwner(ctx, app)
}

// AppOwners returns every app's owner.
func (s *DeviceStore) AppOwners(ctx context.Context) (map[string]uint32, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT app, uid FROM app_owners WHERE phone = ?`, s.phone)
	if err != nil {
		return nil, fmt.Errorf("storage: app owners: %w", err)
	}
	defer rows.Close()
	out := map[string]uint32{}
	for rows.Next() {
		var app string
		var uid int64
		if err := rows.Scan(&app, &uid); err != nil {
			return nil, fmt.Errorf("storage: app owners: %w", err)
		}
		out[app] = uint32(uid)
	}
	return out, rows.Err()
}
