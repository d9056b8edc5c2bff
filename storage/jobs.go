package storage

import (
	"context"
	"fmt"
	"time"
)

// HandlerJob is a raw notification waiting for an app's background handler.
type HandlerJob struct {
	ID        int64
	App       string
	MessageID string
	Seq       uint64
	Body      []byte
	Attempts  int
	CreatedAt time.Time
}

// AddHandlerJob queues a background handler run inside the apply
// transaction, so the job exists if and only if the notification counts as
// applied.
func (a *ApplyTx) AddHandlerJob(app, messageID string, seq uint64, body []byte) error {
	if body == nil {
		body = []byte{}
	}
	if _, err := a.tx.ExecContext(a.ctx, `INSERT INTO handler_jobs (phone, app, message_id, seq, body, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		a.phone, app, messageID, seq, body, a.now.UnixMilli()); err != nil {
		return fmt.Errorf("storage: add handler job: %w", err)
	}
	return nil
}

// HandlerBacklog counts app's queued jobs, pending and running.
func (a *ApplyTx) HandlerBacklog(app string) (int, error) {
	var n int
	if err := a.tx.QueryRowContext(a.ctx, `SELECT count(*) FROM handler_jobs WHERE phone = ? AND app = ?`, a.phone, app).Scan(&n); err != nil {
		return 0, fmt.Errorf("storage: handler backlog: %w", err)
	}
	return n, nil
}

// ClaimHandlerJobs marks up to limit pending jobs as running, oldest first,
// counts the attempt and returns them. It is a write transaction, so it
// waits for an apply transaction in progress and sees the jobs it queued.
func (s *DeviceStore) ClaimHandlerJobs(ctx context.Context, limit int) ([]HandlerJob, error) {
	if limit <= 0 {
		return nil, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("storage: claim handler jobs: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT id, app, message_id, seq, body, attempts, created_at FROM handler_jobs
		WHERE phone = ? AND running = 0 ORDER BY id LIMIT ?`, s.phone, limit)
	if err != nil {
		return nil, fmt.Errorf("storage: claim handler jobs: %w", err)
	}
	var jobs []HandlerJob
	for rows.Next() {
		var j HandlerJob
		var created int64
		if err := rows.Scan(&j.ID, &j.App, &j.MessageID, &j.Seq, &j.Body, &j.Attempts, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("storage: claim handler jobs: %w", err)
		}
		j.CreatedAt = time.UnixMilli(created)
		j.Attempts++
		jobs = append(jobs, j)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("storage: claim handler jobs: %w", err)
	}
	for _, j := range jobs {
		if _, err := tx.ExecContext(ctx, `UPDATE handler_jobs SET running = 1, attempts = ? WHERE phone = ? AND id = ?`, j.Attempts, s.phone, j.ID); err != nil {
			return nil, fmt.Errorf("storage: claim handler jobs: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("storage: claim handler jobs: %w", err)
	}
	return jobs, nil
}

// FinishHandlerJob deletes a job that ran (whatever its outcome) and adds
// to the named counter, in one transaction.
func (s *DeviceStore) FinishHandlerJob(ctx context.Context, id int64, counter string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: finish handler job: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM handler_jobs WHERE phone = ? AND id = ?`, s.phone, id); err != nil {
		return fmt.Errorf("storage: finish handler job: %w", err)
	}
	if counter != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO counters (phone, name, value) VALUES (?, ?, 1)
			ON CONFLICT (phone, name) DO UPDATE SET value = value + 1`, s.phone, counter); err != nil {
			return fmt.Errorf("storage: finish handler job: %w", err)
		}
	}
	return tx.Commit()
}

// RecoverHandlerJobs handles the jobs a crash left marked as running: those
// started fewer than maxAttempts times become pending again, the rest are
// deleted and counted under abandonedCounter. It returns how many of each.
func (s *DeviceStore) RecoverHandlerJobs(ctx context.Context, maxAttempts int, abandonedCounter string) (retried, abandoned int, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("storage: recover handler jobs: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM handler_jobs WHERE phone = ? AND running = 1 AND attempts >= ?`, s.phone, maxAttempts)
	if err != nil {
		return 0, 0, fmt.Errorf("storage: recover handler jobs: %w", err)
	}
	n, _ := res.RowsAffected()
	abandoned = int(n)
	if abandoned > 0 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO counters (phone, name, value) VALUES (?, ?, ?)
			ON CONFLICT (phone, name) DO UPDATE SET value = value + excluded.value`, s.phone, abandonedCounter, abandoned); err != nil {
			return 0, 0, fmt.Errorf("storage: recover handler jobs: %w", err)
		}
	}
	res, err = tx.ExecContext(ctx, `UPDATE handler_jobs SET running = 0 WHERE phone = ? AND running = 1`, s.phone)
	if err != nil {
		return 0, 0, fmt.Errorf("storage: recover handler jobs: %w", err)
	}
	n, _ = res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("storage: recover handler jobs: %w", err)
	}
	return int(n), abandoned, nil
}

// HandlerJobs counts the queued jobs: pending, and running (or interrupted).
func (s *DeviceStore) HandlerJobs(ctx context.Context) (pending, running int, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT coalesce(sum(running = 0), 0), coalesce(sum(running = 1), 0) FROM handler_jobs WHERE phone = ?`, s.phone).
		Scan(&pending, &running)
	if err != nil {
		return 0, 0, fmt.Errorf("storage: handler jobs: %w", err)
	}
	return pending, running, nil
}
