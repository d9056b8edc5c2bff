package sqlitestore

import (
	"context"
	"fmt"
	"time"
)

// RetireDevice refuses a device for good: its channels are deleted (their
// URIs answer 404 from then on) and its queue emptied, in one transaction,
// while its row and key stay so that the service can prove the refusal to
// the device when it comes back. Retiring an unknown device is ErrNotFound;
// retiring a retired one again changes nothing but the time.
func (s *Store) RetireDevice(ctx context.Context, id string, at time.Time) error {
	r := &retireReq{id: id, at: at.UnixMilli(), done: make(chan struct{})}
	if err := s.submit(ctx, r, r.done); err != nil {
		return fmt.Errorf("sqlitestore: retire device: %w", err)
	}
	for _, ch := range r.channels {
		s.channels.Drop(ch)
	}
	if r.err != nil {
		return fmt.Errorf("sqlitestore: retire device %s: %w", id, r.err)
	}
	return nil
}

type retireReq struct {
	id       string
	at       int64
	channels []string // the channels deleted, to drop from the cache
	err      error
	done     chan struct{}
}

// apply runs its statements inside a savepoint, so that a failure undoes
// all of them and leaves the rest of the group transaction alone.
func (r *retireReq) apply(ctx context.Context, g *groupTx) error {
	if _, err := g.tx.ExecContext(ctx, `SAVEPOINT retire`); err != nil {
		return err
	}
	if err := r.run(ctx, g); err != nil {
		r.err, r.channels = err, nil
		if _, rerr := g.tx.ExecContext(ctx, `ROLLBACK TO retire`); rerr != nil {
			return rerr
		}
	}
	_, err := g.tx.ExecContext(ctx, `RELEASE retire`)
	return err
}

func (r *retireReq) run(ctx context.Context, g *groupTx) error {
	res, err := g.tx.ExecContext(ctx, `UPDATE devices SET retired_at = ? WHERE id = ?`, r.at, r.id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	rows, err := g.tx.QueryContext(ctx, `DELETE FROM channels WHERE device_id = ? RETURNING id`, r.id)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		r.channels = append(r.channels, id)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	if err := rows.Err(); err != nil {
		return err
	}
	_, err = g.tx.ExecContext(ctx, `DELETE FROM queue WHERE device_id = ?`, r.id)
	g.notes.drop(r.id)
	return err
}

func (r *retireReq) finish(err error) {
	if err != nil {
		r.err, r.channels = err, nil
	}
	close(r.done)
}
