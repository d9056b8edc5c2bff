package sqlitestore

import (
	"context"
	"fmt"
	"time"
)

// ExpiredDevices returns up to limit ids of devices last seen before
// before, oldest first.
func (s *Store) ExpiredDevices(ctx context.Context, before time.Time, limit int) ([]string, error) {
	rows, err := s.rd.QueryContext(ctx, `SELECT id FROM devices WHERE last_seen < ? ORDER BY last_seen LIMIT ?`, before.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: expired devices: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("sqlitestore: expired devices: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlitestore: expired devices: %w", err)
	}
	return ids, nil
}

// DeleteDevice deletes a device with its channels and queued notifications,
// if it was last seen before seenBefore: a device that connected since it
// was found expired is kept. It reports whether the device was deleted;
// its channel URIs answer 404 from then on.
func (s *Store) DeleteDevice(ctx context.Context, id string, seenBefore time.Time) (bool, error) {
	r := &deleteDeviceReq{id: id, before: seenBefore.UnixMilli(), done: make(chan struct{})}
	if err := s.submit(ctx, r, r.done); err != nil {
		return false, fmt.Errorf("sqlitestore: delete device: %w", err)
	}
	if r.err != nil {
		return false, fmt.Errorf("sqlitestore: delete device: %w", r.err)
	}
	for _, ch := range r.channels {
		s.channels.Drop(ch)
	}
	return r.deleted, nil
}

// deleteDeviceReq deletes one device in the group transaction. Its
// statements must all take effect or none, so a failure is the
// transaction's, and commitBatch then tries it alone.
type deleteDeviceReq struct {
	id       string
	before   int64
	channels []string // the device's channels, dropped from the cache once committed
	deleted  bool
	err      error
	done     chan struct{}
}

func (r *deleteDeviceReq) apply(ctx context.Context, g *groupTx) error {
	r.channels, r.deleted = nil, false
	// Read before the delete, which takes the channels with it (ON DELETE
	// CASCADE).
	rows, err := g.tx.QueryContext(ctx, `SELECT id FROM channels WHERE device_id = ?`, r.id)
	if err != nil {
		return err
	}
	var channels []string
	for rows.Next() {
		var ch string
		if err := rows.Scan(&ch); err != nil {
			rows.Close()
			return err
		}
		channels = append(channels, ch)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return err
	}
	if err := rows.Close(); err != nil {
		return err
	}
	res, err := g.tx.ExecContext(ctx, `DELETE FROM devices WHERE id = ? AND last_seen < ?`, r.id, r.before)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil
	}
	// The queue has no foreign key (it is written on every notification),
	// so it is emptied here.
	if _, err := g.tx.ExecContext(ctx, `DELETE FROM queue WHERE device_id = ?`, r.id); err != nil {
		return err
	}
	g.notes.drop(r.id)
	r.channels = channels
	r.deleted = true
	return nil
}

func (r *deleteDeviceReq) finish(err error) {
	if err != nil {
		r.err = err
	}
	close(r.done)
}
