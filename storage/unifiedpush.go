package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// UnifiedPushRegistration is a UnifiedPush app's registration with the
// daemon's D-Bus distributor: the token the app chose, the D-Bus name it
// is reached at, and the Herald app id its channel is kept under.
type UnifiedPushRegistration struct {
	Token       string
	Service     string
	App         string
	Description string
	VAPID       string
	Version     int // the connector interface the app registered through: 1 or 2
	CreatedAt   time.Time
}

// UnifiedPushMessage is a message waiting for a UnifiedPush app's ack.
type UnifiedPushMessage struct {
	ID         int64
	Token      string
	MessageID  string
	Body       []byte
	ReceivedAt time.Time
}

const unifiedPushColumns = `token, service, app, description, vapid, version, created_at`

func scanUnifiedPush(row interface{ Scan(...any) error }) (UnifiedPushRegistration, error) {
	var r UnifiedPushRegistration
	var created int64
	err := row.Scan(&r.Token, &r.Service, &r.App, &r.Description, &r.VAPID, &r.Version, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("storage: unifiedpush registration: %w", err)
	}
	r.CreatedAt = time.UnixMilli(created)
	return r, nil
}

// UnifiedPush returns the registration of token.
func (s *DeviceStore) UnifiedPush(ctx context.Context, token string) (UnifiedPushRegistration, error) {
	return scanUnifiedPush(s.db.QueryRowContext(ctx, `SELECT `+unifiedPushColumns+` FROM unifiedpush WHERE phone = ? AND token = ?`, s.phone, token))
}

// UnifiedPushes lists every registration, oldest first.
func (s *DeviceStore) UnifiedPushes(ctx context.Context) ([]UnifiedPushRegistration, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+unifiedPushColumns+` FROM unifiedpush WHERE phone = ? ORDER BY created_at, token`, s.phone)
	if err != nil {
		return nil, fmt.Errorf("storage: unifiedpush registrations: %w", err)
	}
	defer rows.Close()
	var out []UnifiedPushRegistration
	for rows.Next() {
		r, err := scanUnifiedPush(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// SaveUnifiedPush stores a registration, replacing the token's earlier one.
func (s *DeviceStore) SaveUnifiedPush(ctx context.Context, r UnifiedPushRegistration) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO unifiedpush (phone, `+unifiedPushColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (phone, token) DO UPDATE SET service = excluded.service, app = excluded.app, description = excluded.description,
			vapid = excluded.vapid, version = excluded.version`,
		s.phone, r.Token, r.Service, r.App, r.Description, r.VAPID, r.Version, r.CreatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("storage: save unifiedpush registration: %w", err)
	}
	return nil
}

// DeleteUnifiedPush forgets token's registration and its unsent messages.
func (s *DeviceStore) DeleteUnifiedPush(ctx context.Context, token string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: delete unifiedpush registration: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM unifiedpush_outbox WHERE phone = ? AND token = ?`, s.phone, token); err != nil {
		return fmt.Errorf("storage: delete unifiedpush messages: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM unifiedpush WHERE phone = ? AND token = ?`, s.phone, token); err != nil {
		return fmt.Errorf("storage: delete unifiedpush registration: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: delete unifiedpush registration: %w", err)
	}
	return nil
}

// UnifiedPushOutbox lists up to limit messages not yet acknowledged with
// ids above after, oldest first.
func (s *DeviceStore) UnifiedPushOutbox(ctx context.Context, after int64, limit int) ([]UnifiedPushMessage, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, token, message_id, body, received_at FROM unifiedpush_outbox WHERE phone = ? AND id > ? ORDER BY id LIMIT ?`, s.phone, after, limit)
	if err != nil {
		return nil, fmt.Errorf("storage: unifiedpush outbox: %w", err)
	}
	defer rows.Close()
	var out []UnifiedPushMessage
	for rows.Next() {
		var m UnifiedPushMessage
		var at int64
		if err := rows.Scan(&m.ID, &m.Token, &m.MessageID, &m.Body, &at); err != nil {
			return nil, fmt.Errorf("storage: unifiedpush outbox: %w", err)
		}
		m.ReceivedAt = time.UnixMilli(at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// AckUnifiedPush deletes a message its app acknowledged and adds to the
// named counter, in one transaction.
func (s *DeviceStore) AckUnifiedPush(ctx context.Context, id int64, counter string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: unifiedpush ack: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM unifiedpush_outbox WHERE phone = ? AND id = ?`, s.phone, id)
	if err != nil {
		return fmt.Errorf("storage: unifiedpush ack: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 && counter != "" {
		if _, err := tx.ExecContext(ctx, `INSERT INTO counters (phone, name, value) VALUES (?, ?, 1)
			ON CONFLICT (phone, name) DO UPDATE SET value = value + 1`, s.phone, counter); err != nil {
			return fmt.Errorf("storage: unifiedpush ack: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: unifiedpush ack: %w", err)
	}
	return nil
}

type unifiedPushLookup struct {
	reg UnifiedPushRegistration
	ok  bool
}

// UnifiedPushByApp finds, inside the transaction, the UnifiedPush
// registration whose channel is app's; ok is false for an ordinary app.
func (a *ApplyTx) UnifiedPushByApp(app string) (reg UnifiedPushRegistration, ok bool, err error) {
	if l, found := a.ups[app]; found {
		return l.reg, l.ok, nil
	}
	reg, err = scanUnifiedPush(a.tx.QueryRowContext(a.ctx, qUnifiedPushByApp, a.phone, app))
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return reg, false, err
	default:
		ok = true
	}
	if a.ups == nil {
		a.ups = map[string]unifiedPushLookup{}
	}
	a.ups[app] = unifiedPushLookup{reg, ok}
	return reg, ok, nil
}

// AddUnifiedPush queues a message for token's app and returns its id. A
// registration keeps at most backlog messages: the oldest beyond it are
// dropped, and dropped says how many.
func (a *ApplyTx) AddUnifiedPush(token, messageID string, body []byte, backlog int) (id int64, dropped int64, err error) {
	res, err := a.tx.ExecContext(a.ctx, qAddUnifiedPush, a.phone, token, messageID, body, a.now.UnixMilli())
	if err != nil {
		return 0, 0, fmt.Errorf("storage: queue unifiedpush message: %w", err)
	}
	if id, err = res.LastInsertId(); err != nil {
		return 0, 0, err
	}
	res, err = a.tx.ExecContext(a.ctx, qTrimUnifiedPush, a.phone, token, a.phone, token, backlog)
	if err != nil {
		return 0, 0, fmt.Errorf("storage: trim unifiedpush outbox: %w", err)
	}
	dropped, _ = res.RowsAffected()
	return id, dropped, nil
}

const (
	qUnifiedPushByApp = `SELECT ` + unifiedPushColumns + ` FROM unifiedpush WHERE phone = ? AND app = ?`
	qAddUnifiedPush   = `INSERT INTO unifiedpush_outbox (phone, token, message_id, body, received_at) VALUES (?, ?, ?, ?, ?)`
	qTrimUnifiedPush  = `DELETE FROM unifiedpush_outbox WHERE phone = ? AND token = ? AND id <=
		(SELECT id FROM unifiedpush_outbox WHERE phone = ? AND token = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`
)

// AddCount adds delta to the named counter outside any notification's
// transaction: for events of the device's own, such as a call to an app
// the distributor withheld.
func (s *DeviceStore) AddCount(ctx context.Context, counter string, delta int64) error {
	if _, err := s.db.ExecContext(ctx, qCount, s.phone, counter, delta); err != nil {
		return fmt.Errorf("storage: count %s: %w", counter, err)
	}
	return nil
}
