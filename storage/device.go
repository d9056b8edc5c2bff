package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Identity is the device's enrolment with one notification service.
type Identity struct {
	Service    string
	DeviceID   string
	Secret     string
	AppliedSeq uint64
	EnrolledAt time.Time
}

// LocalChannel is an app's channel as the device keeps it.
type LocalChannel struct {
	App         string
	Name        string
	ChannelID   string
	URI         string
	ServiceName string
	// VAPIDKey is the Web Push application server key the channel is
	// restricted to ("" for none).
	VAPIDKey  string
	Toast     bool
	Tile      bool
	Domains   []string
	Pinned    []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// TileRecord is one live tile's stored state.
type TileRecord struct {
	App       string
	TileID    string
	Template  string
	Fields    map[string]string
	UpdatedAt time.Time
}

// ToastRecord is one received toast.
type ToastRecord struct {
	ID         int64
	App        string
	Text1      string
	Text2      string
	Param      string
	Sound      string
	Silent     bool
	ShownBy    string
	MessageID  string
	Seq        uint64
	SentAt     time.Time // when the service accepted the sender's POST; zero if not known
	ReceivedAt time.Time
}

// Raw notification outcomes in the raw log; the local API's app.Raw
// uses the same words.
const (
	RawToApp     = "app"     // the running app took it
	RawToHandler = "handler" // queued for the app's background handler
	RawDropped   = "dropped" // the app was not running: dropped, as MPNS did
)

// RawRecord is one raw notification the phone received.
type RawRecord struct {
	ID         int64
	App        string
	MessageID  string
	Body       []byte
	Outcome    string // RawToApp, RawToHandler or RawDropped
	Seq        uint64
	SentAt     time.Time // when the service accepted the sender's POST; zero if not known
	ReceivedAt time.Time
}

// RawLogPerApp is how many raw notifications the raw log keeps per app.
const RawLogPerApp = 50

// Event is something waiting for a running app.
type Event struct {
	ID   int64
	App  string
	Type string
	Data []byte
}

// DeviceDB is the device daemon's database file. It holds one phone for a
// real device, many for the emulator.
type DeviceDB struct {
	db    *sql.DB
	stmts map[string]*sql.Stmt // the apply path's, prepared at open; read-only after
}

// The device database's connections: the link's apply, an app's event
// stream and its acks, and the local API run at once, and more would only
// queue for SQLite's one writer. They are opened once and kept: with
// database/sql's default of two idle connections, a third was opened and
// closed again on every burst, paying SQLite's open, its pragmas and its
// prepared statements each time. With the pool bounded, nothing may hold a
// connection while it waits for another (a store call from inside an
// Apply callback, say): enough of those at once would wait forever.
const deviceConns = 4

// deviceCacheKiB bounds each connection's page cache. SQLite's default of
// 2 MiB per connection is most of the daemon's memory once the toast
// history grows, and the apply path touches a handful of pages: the
// identity, channel and app rows, counters, and the right edge of the
// toasts and events indexes.
const deviceCacheKiB = 512

// applyQueries are the statements the apply path runs for every batch,
// prepared once at open.
var applyQueries = []string{qApplied, qSetApplied, qChannelByID, qRunning, qCount, qAddToast, qAddEvent, qTile, qPutTile, qAddRaw,
	qUnifiedPushByApp, qAddUnifiedPush, qTrimUnifiedPush}

// OpenDevice opens (creating if needed) the device database at file.
func OpenDevice(ctx context.Context, file string) (*DeviceDB, error) {
	db, err := open(ctx, file)
	if err != nil {
		return nil, err
	}
	d := &DeviceDB{db: db, stmts: map[string]*sql.Stmt{}}
	if err := d.setup(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("storage: open %s: %w", file, err)
	}
	return d, nil
}

// setup sizes the pool, sets the page cache on each connection (a pragma
// holds for its connection only, so every one is held at once to reach
// them all) and prepares the apply path's statements. A connection that
// database/sql replaces after an error gets SQLite's default cache: more
// memory, nothing worse.
func (d *DeviceDB) setup(ctx context.Context) error {
	d.db.SetMaxOpenConns(deviceConns)
	d.db.SetMaxIdleConns(deviceConns)
	if err := d.eachConn(ctx, fmt.Sprintf("PRAGMA cache_size = -%d", deviceCacheKiB)); err != nil {
		return err
	}
	for _, q := range applyQueries {
		st, err := d.db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("preparing %q: %w", q, err)
		}
		d.stmts[q] = st
	}
	return nil
}

// eachConn runs stmt on every connection of the pool, holding them all so
// that each is a different one, and gives them back before returning.
func (d *DeviceDB) eachConn(ctx context.Context, stmt string) error {
	conns := make([]*sql.Conn, 0, deviceConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range deviceConns {
		c, err := d.db.Conn(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
		if _, err := c.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the database.
func (d *DeviceDB) Close() error {
	for _, st := range d.stmts {
		st.Close()
	}
	return d.db.Close()
}

// Phone returns the store of one phone; a real device uses "".
func (d *DeviceDB) Phone(name string) *DeviceStore {
	return &DeviceStore{db: d.db, stmts: d.stmts, phone: name}
}

// Phones lists the phones that have enrolled with any service.
func (d *DeviceDB) Phones(ctx context.Context) ([]string, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT DISTINCT phone FROM identity ORDER BY phone`)
	if err != nil {
		return nil, fmt.Errorf("storage: phones: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeviceStore is one phone's state. Only its daemon writes it.
type DeviceStore struct {
	db    *sql.DB
	stmts map[string]*sql.Stmt
	phone string
}

// Identity returns the device's identity with service.
func (s *DeviceStore) Identity(ctx context.Context, service string) (Identity, error) {
	id := Identity{Service: service}
	var enrolled int64
	err := s.db.QueryRowContext(ctx, `SELECT device_id, secret, applied_seq, enrolled_at FROM identity WHERE phone = ? AND service = ?`, s.phone, service).
		Scan(&id.DeviceID, &id.Secret, &id.AppliedSeq, &enrolled)
	if errors.Is(err, sql.ErrNoRows) {
		return Identity{Service: service}, fmt.Errorf("storage: identity for %s: %w", service, ErrNotFound)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("storage: identity: %w", err)
	}
	id.EnrolledAt = time.UnixMilli(enrolled)
	return id, nil
}

// SaveIdentity stores a new enrolment, replacing any earlier one with the
// same service. A new identity starts with no applied notifications and,
// since the service does not know the old channels under it, no channels.
func (s *DeviceStore) SaveIdentity(ctx context.Context, id Identity) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: save identity: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO identity (phone, service, device_id, secret, applied_seq, enrolled_at) VALUES (?, ?, ?, ?, 0, ?)
		ON CONFLICT (phone, service) DO UPDATE SET device_id = excluded.device_id, secret = excluded.secret, applied_seq = 0, enrolled_at = excluded.enrolled_at`,
		s.phone, id.Service, id.DeviceID, id.Secret, id.EnrolledAt.UnixMilli()); err != nil {
		return fmt.Errorf("storage: save identity: %w", err)
	}
	return tx.Commit()
}

const localChannelColumns = `app, name, channel_id, uri, service_name, toast, tile, domains, pinned, created_at, updated_at, vapid_key`

func scanLocalChannel(row interface{ Scan(...any) error }) (LocalChannel, error) {
	var c LocalChannel
	var domains, pinned string
	var created, updated int64
	if err := row.Scan(&c.App, &c.Name, &c.ChannelID, &c.URI, &c.ServiceName, &c.Toast, &c.Tile, &domains, &pinned, &created, &updated, &c.VAPIDKey); err != nil {
		return LocalChannel{}, err
	}
	c.CreatedAt, c.UpdatedAt = time.UnixMilli(created), time.UnixMilli(updated)
	if err := json.Unmarshal([]byte(domains), &c.Domains); err != nil {
		return LocalChannel{}, err
	}
	if err := json.Unmarshal([]byte(pinned), &c.Pinned); err != nil {
		return LocalChannel{}, err
	}
	return c, nil
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func channelBy(ctx context.Context, q queryer, phone, where string, arg any) (LocalChannel, error) {
	c, err := scanLocalChannel(q.QueryRowContext(ctx, `SELECT `+localChannelColumns+` FROM channels WHERE phone = ? AND `+where, phone, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return LocalChannel{}, fmt.Errorf("storage: channel: %w", ErrNotFound)
	}
	if err != nil {
		return LocalChannel{}, fmt.Errorf("storage: channel: %w", err)
	}
	return c, nil
}

// Channel returns app's channel.
func (s *DeviceStore) Channel(ctx context.Context, app string) (LocalChannel, error) {
	return channelBy(ctx, s.db, s.phone, `app = ?`, app)
}

// ChannelByID returns the channel with the service's channel id.
func (s *DeviceStore) ChannelByID(ctx context.Context, id string) (LocalChannel, error) {
	return channelBy(ctx, s.db, s.phone, `channel_id = ?`, id)
}

// Channels lists channels, of one app when app is not empty.
func (s *DeviceStore) Channels(ctx context.Context, app string) ([]LocalChannel, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+localChannelColumns+` FROM channels WHERE phone = ? AND (? = '' OR app = ?) ORDER BY app`, s.phone, app, app)
	if err != nil {
		return nil, fmt.Errorf("storage: channels: %w", err)
	}
	defer rows.Close()
	out := []LocalChannel{}
	for rows.Next() {
		c, err := scanLocalChannel(rows)
		if err != nil {
			return nil, fmt.Errorf("storage: channels: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// CountChannels counts the device's channels.
func (s *DeviceStore) CountChannels(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM channels WHERE phone = ?`, s.phone).Scan(&n)
	return n, err
}

// SaveChannel inserts or replaces app's channel.
func (s *DeviceStore) SaveChannel(ctx context.Context, c LocalChannel) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO channels (phone, `+localChannelColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (phone, app) DO UPDATE SET name = excluded.name, channel_id = excluded.channel_id, uri = excluded.uri,
			service_name = excluded.service_name, vapid_key = excluded.vapid_key, toast = excluded.toast, tile = excluded.tile, domains = excluded.domains,
			pinned = excluded.pinned, updated_at = excluded.updated_at`,
		s.phone, c.App, c.Name, c.ChannelID, c.URI, c.ServiceName, c.Toast, c.Tile, jsonList(c.Domains), jsonList(c.Pinned),
		c.CreatedAt.UnixMilli(), c.UpdatedAt.UnixMilli(), c.VAPIDKey)
	if err != nil {
		return fmt.Errorf("storage: save channel: %w", err)
	}
	return nil
}

// DeleteChannel removes app's channel.
func (s *DeviceStore) DeleteChannel(ctx context.Context, app string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM channels WHERE phone = ? AND app = ?`, s.phone, app)
	if err != nil {
		return fmt.Errorf("storage: delete channel: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("storage: delete channel %s: %w", app, ErrNotFound)
	}
	return nil
}

// DeleteAllChannels forgets every channel (after enrolling anew).
func (s *DeviceStore) DeleteAllChannels(ctx context.Context) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM channels WHERE phone = ?`, s.phone)
	return err
}

// Tiles lists tile state, of one app when app is not empty.
func (s *DeviceStore) Tiles(ctx context.Context, app string) ([]TileRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT app, tile_id, template, fields, updated_at FROM tiles WHERE phone = ? AND (? = '' OR app = ?) ORDER BY app, tile_id`, s.phone, app, app)
	if err != nil {
		return nil, fmt.Errorf("storage: tiles: %w", err)
	}
	defer rows.Close()
	out := []TileRecord{}
	for rows.Next() {
		t, err := scanTile(rows)
		if err != nil {
			return nil, fmt.Errorf("storage: tiles: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func scanTile(row interface{ Scan(...any) error }) (TileRecord, error) {
	var t TileRecord
	var fields string
	var updated int64
	if err := row.Scan(&t.App, &t.TileID, &t.Template, &fields, &updated); err != nil {
		return TileRecord{}, err
	}
	t.UpdatedAt = time.UnixMilli(updated)
	if err := json.Unmarshal([]byte(fields), &t.Fields); err != nil {
		return TileRecord{}, err
	}
	return t, nil
}

// Toasts lists toasts, newest last, of one app when app is not empty; at
// most limit (0 = all).
func (s *DeviceStore) Toasts(ctx context.Context, app string, limit int) ([]ToastRecord, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, app, text1, text2, param, sound, silent, shown_by, message_id, seq, sent_at, received_at FROM
		(SELECT * FROM toasts WHERE phone = ? AND (? = '' OR app = ?) ORDER BY id DESC LIMIT ?) ORDER BY id`, s.phone, app, app, limit)
	if err != nil {
		return nil, fmt.Errorf("storage: toasts: %w", err)
	}
	defer rows.Close()
	out := []ToastRecord{}
	for rows.Next() {
		var t ToastRecord
		var sent, received int64
		if err := rows.Scan(&t.ID, &t.App, &t.Text1, &t.Text2, &t.Param, &t.Sound, &t.Silent, &t.ShownBy, &t.MessageID, &t.Seq, &sent, &received); err != nil {
			return nil, fmt.Errorf("storage: toasts: %w", err)
		}
		t.SentAt, t.ReceivedAt = unixMilliOrZero(sent), time.UnixMilli(received)
		out = append(out, t)
	}
	return out, rows.Err()
}

// RawLog returns the newest raw notifications of each app (of one app when
// app is not empty), at most RawLogPerApp each, oldest first.
func (s *DeviceStore) RawLog(ctx context.Context, app string) ([]RawRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, app, message_id, body, outcome, seq, sent_at, received_at FROM
		(SELECT *, ROW_NUMBER() OVER (PARTITION BY app ORDER BY id DESC) AS n FROM raw_log WHERE phone = ? AND (? = '' OR app = ?))
		WHERE n <= ? ORDER BY id`, s.phone, app, app, RawLogPerApp)
	if err != nil {
		return nil, fmt.Errorf("storage: raw log: %w", err)
	}
	defer rows.Close()
	out := []RawRecord{}
	for rows.Next() {
		var r RawRecord
		var sent, received int64
		if err := rows.Scan(&r.ID, &r.App, &r.MessageID, &r.Body, &r.Outcome, &r.Seq, &sent, &received); err != nil {
			return nil, fmt.Errorf("storage: raw log: %w", err)
		}
		r.SentAt, r.ReceivedAt = unixMilliOrZero(sent), time.UnixMilli(received)
		out = append(out, r)
	}
	return out, rows.Err()
}

func unixMilliOrZero(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// Events returns up to limit of app's events after id, oldest first.
func (s *DeviceStore) Events(ctx context.Context, app string, after int64, limit int) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, type, data FROM events WHERE phone = ? AND app = ? AND id > ? ORDER BY id LIMIT ?`, s.phone, app, after, limit)
	if err != nil {
		return nil, fmt.Errorf("storage: events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		e := Event{App: app}
		var data string
		if err := rows.Scan(&e.ID, &e.Type, &data); err != nil {
			return nil, fmt.Errorf("storage: events: %w", err)
		}
		e.Data = []byte(data)
		out = append(out, e)
	}
	return out, rows.Err()
}

// AckEvents deletes app's events up to id: the app has taken them.
func (s *DeviceStore) AckEvents(ctx context.Context, app string, id int64) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM events WHERE phone = ? AND app = ? AND id <= ?`, s.phone, app, id); err != nil {
		return fmt.Errorf("storage: ack events: %w", err)
	}
	return nil
}

// AddEvent queues an event for app outside a notification (URI changes,
// connection status).
func (s *DeviceStore) AddEvent(ctx context.Context, app, typ string, data []byte, now time.Time) (int64, error) {
	return addEvent(ctx, s.db, s.phone, app, typ, data, now)
}

// ReplaceEvent queues an event for app that supersedes every event of the
// same type still waiting for it: a state (where the link stands) rather
// than a happening, so an app reconnecting after a while gets the current
// state once, not each state it missed.
func (s *DeviceStore) ReplaceEvent(ctx context.Context, app, typ string, data []byte, now time.Time) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("storage: replace event: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE phone = ? AND app = ? AND type = ?`, s.phone, app, typ); err != nil {
		return 0, fmt.Errorf("storage: replace event: %w", err)
	}
	id, err := addEvent(ctx, tx, s.phone, app, typ, data, now)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("storage: replace event: %w", err)
	}
	return id, nil
}

func addEvent(ctx context.Context, q queryer, phone, app, typ string, data []byte, now time.Time) (int64, error) {
	res, err := q.ExecContext(ctx, qAddEvent, phone, app, typ, string(data), now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("storage: add event: %w", err)
	}
	return res.LastInsertId()
}

// SetRunning records until when app counts as running (zero: not running)
// and whether it is in the foreground.
func (s *DeviceStore) SetRunning(ctx context.Context, app string, until time.Time, foreground bool) error {
	ms := int64(0)
	if !until.IsZero() {
		ms = until.UnixMilli()
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO apps (phone, app, running_until, foreground) VALUES (?, ?, ?, ?)
		ON CONFLICT (phone, app) DO UPDATE SET running_until = excluded.running_until, foreground = excluded.foreground`, s.phone, app, ms, foreground && ms != 0); err != nil {
		return fmt.Errorf("storage: set running: %w", err)
	}
	if ms == 0 {
		// An app that stopped takes no more events; drop what it left.
		if _, err := s.db.ExecContext(ctx, `DELETE FROM events WHERE phone = ? AND app = ?`, s.phone, app); err != nil {
			return fmt.Errorf("storage: set running: %w", err)
		}
	}
	return nil
}

// Counters returns every counter.
func (s *DeviceStore) Counters(ctx context.Context) (map[string]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT name, value FROM counters WHERE phone = ?`, s.phone)
	if err != nil {
		return nil, fmt.Errorf("storage: counters: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var n string
		var v int64
		if err := rows.Scan(&n, &v); err != nil {
			return nil, err
		}
		out[n] = v
	}
	return out, rows.Err()
}

// Setting returns a stored setting, or def.
func (s *DeviceStore) Setting(ctx context.Context, name, def string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE phone = ? AND name = ?`, s.phone, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return def, nil
	}
	if err != nil {
		return "", fmt.Errorf("storage: setting: %w", err)
	}
	return v, nil
}

// SetSetting stores a setting.
func (s *DeviceStore) SetSetting(ctx context.Context, name, value string) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO settings (phone, name, value) VALUES (?, ?, ?) ON CONFLICT (phone, name) DO UPDATE SET value = excluded.value`, s.phone, name, value); err != nil {
		return fmt.Errorf("storage: set setting: %w", err)
	}
	return nil
}

// The apply path's statements.
const (
	qApplied         = `SELECT applied_seq FROM identity WHERE phone = ? AND service = ?`
	qSetApplied      = `UPDATE identity SET applied_seq = ? WHERE phone = ? AND service = ?`
	channelByIDWhere = `channel_id = ?`
	qChannelByID     = `SELECT ` + localChannelColumns + ` FROM channels WHERE phone = ? AND ` + channelByIDWhere
	qRunning         = `SELECT running_until, foreground FROM apps WHERE phone = ? AND app = ?`
	qCount           = `INSERT INTO counters (phone, name, value) VALUES (?, ?, ?) ON CONFLICT (phone, name) DO UPDATE SET value = value + excluded.value`
	qAddToast        = `INSERT INTO toasts (phone, app, text1, text2, param, sound, silent, shown_by, message_id, seq, sent_at, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qAddRaw   = `INSERT INTO raw_log (phone, app, message_id, body, outcome, seq, sent_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
	qAddEvent = `INSERT INTO events (phone, app, type, data, created_at) VALUES (?, ?, ?, ?, ?)`
	qTile     = `SELECT app, tile_id, template, fields, updated_at FROM tiles WHERE phone = ? AND app = ? AND tile_id = ?`
	qPutTile  = `INSERT INTO tiles (phone, app, tile_id, template, fields, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (phone, app, tile_id) DO UPDATE SET template = excluded.template, fields = excluded.fields, updated_at = excluded.updated_at`
)

// ApplyTx is the transaction in which the daemon applies a batch of
// notifications; its effects and the new applied sequence number commit
// together, so each notification takes effect exactly once.
type ApplyTx struct {
	ctx   context.Context
	tx    *preparedTx
	now   time.Time
	phone string

	// Channels and apps cannot change under the transaction (it holds the
	// write lock and its methods write neither), so a batch looks each up
	// once, however many notifications it has for it.
	channels map[string]channelLookup
	apps     map[string]appState
	ups      map[string]unifiedPushLookup
	// counts are the batch's counter increments, written once each just
	// before the commit rather than once per notification.
	counts []counterDelta
}

type counterDelta struct {
	name  string
	delta int64
}

type channelLookup struct {
	ch  LocalChannel
	err error
}

type appState struct{ running, foreground bool }

// Apply runs fn in one transaction and records seq as applied for service.
// It returns the sequence number applied before, so the caller can skip
// notifications it has already applied (fn receives it too).
func (s *DeviceStore) Apply(ctx context.Context, service string, seq uint64, now time.Time, fn func(tx *ApplyTx, applied uint64) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("storage: apply: %w", err)
	}
	defer tx.Rollback()
	ptx := &preparedTx{tx: tx, prepared: s.stmts}
	var applied uint64
	if err := ptx.QueryRowContext(ctx, qApplied, s.phone, service).Scan(&applied); err != nil {
		return fmt.Errorf("storage: apply: identity: %w", err)
	}
	if seq <= applied {
		return nil
	}
	a := &ApplyTx{ctx: ctx, tx: ptx, now: now, phone: s.phone}
	if err := fn(a, applied); err != nil {
		return err
	}
	if err := a.flushCounts(); err != nil {
		return err
	}
	if _, err := ptx.ExecContext(ctx, qSetApplied, seq, s.phone, service); err != nil {
		return fmt.Errorf("storage: apply: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("storage: apply: commit: %w", err)
	}
	return nil
}

// preparedTx runs a transaction's statements as prepared statements: the
// apply path's from those prepared at open, others prepared on the
// transaction's own connection the first time it runs them. A batch runs
// the same few statements for every notification, and SQLite's prepare
// costs as much as a small statement's run. Nothing here takes a second
// connection, which could wait forever on a full pool while the
// transaction holds its own.
type preparedTx struct {
	tx       *sql.Tx
	prepared map[string]*sql.Stmt
	bound    map[string]*sql.Stmt
}

func (p *preparedTx) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := p.bound[query]; ok {
		return st, nil
	}
	var st *sql.Stmt
	if parent, ok := p.prepared[query]; ok {
		st = p.tx.StmtContext(ctx, parent)
	} else {
		var err error
		if st, err = p.tx.PrepareContext(ctx, query); err != nil {
			return nil, err
		}
	}
	if p.bound == nil {
		p.bound = map[string]*sql.Stmt{}
	}
	p.bound[query] = st
	return st, nil
}

func (p *preparedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return p.tx.QueryContext(ctx, query, args...)
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext falls back to the unprepared query when preparing
// failed, so the caller gets the error through the row as usual.
func (p *preparedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return p.tx.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (p *preparedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return p.tx.ExecContext(ctx, query, args...)
	}
	return st.ExecContext(ctx, args...)
}

// ChannelByID finds a channel inside the transaction.
func (a *ApplyTx) ChannelByID(id string) (LocalChannel, error) {
	if l, ok := a.channels[id]; ok {
		return l.ch, l.err
	}
	ch, err := channelBy(a.ctx, a.tx, a.phone, channelByIDWhere, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return ch, err
	}
	if a.channels == nil {
		a.channels = map[string]channelLookup{}
	}
	a.channels[id] = channelLookup{ch, err}
	return ch, err
}

// Tile returns a tile's state; a tile never updated has empty state.
func (a *ApplyTx) Tile(app, tileID string) (TileRecord, error) {
	t, err := scanTile(a.tx.QueryRowContext(a.ctx, qTile, a.phone, app, tileID))
	if errors.Is(err, sql.ErrNoRows) {
		return TileRecord{App: app, TileID: tileID, Fields: map[string]string{}}, nil
	}
	if err != nil {
		return TileRecord{}, fmt.Errorf("storage: tile: %w", err)
	}
	return t, nil
}

// PutTile stores a tile's state.
func (a *ApplyTx) PutTile(t TileRecord) error {
	fields, err := json.Marshal(t.Fields)
	if err != nil {
		return err
	}
	if _, err := a.tx.ExecContext(a.ctx, qPutTile, a.phone, t.App, t.TileID, t.Template, string(fields), a.now.UnixMilli()); err != nil {
		return fmt.Errorf("storage: put tile: %w", err)
	}
	return nil
}

// AddToast records a toast.
func (a *ApplyTx) AddToast(t ToastRecord) (int64, error) {
	res, err := a.tx.ExecContext(a.ctx, qAddToast, a.phone, t.App, t.Text1, t.Text2, t.Param, t.Sound, t.Silent, t.ShownBy, t.MessageID, t.Seq,
		milliOrZero(t.SentAt), a.now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("storage: add toast: %w", err)
	}
	return res.LastInsertId()
}

// rawLogPruneEvery: the raw log is trimmed to RawLogPerApp per app on
// every this many inserts, not on each, to keep the apply path to one
// insert per raw notification; in between an app may hold this many more.
const rawLogPruneEvery = 32

// AddRaw records a raw notification in the raw log.
func (a *ApplyTx) AddRaw(r RawRecord) error {
	res, err := a.tx.ExecContext(a.ctx, qAddRaw, a.phone, r.App, r.MessageID, r.Body, r.Outcome, r.Seq, milliOrZero(r.SentAt), a.now.UnixMilli())
	if err != nil {
		return fmt.Errorf("storage: add raw: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil || id%rawLogPruneEvery != 0 {
		return nil
	}
	if _, err := a.tx.ExecContext(a.ctx, `DELETE FROM raw_log WHERE id IN (SELECT id FROM
		(SELECT id, ROW_NUMBER() OVER (PARTITION BY app ORDER BY id DESC) AS n FROM raw_log WHERE phone = ?) WHERE n > ?)`,
		a.phone, RawLogPerApp); err != nil {
		return fmt.Errorf("storage: trim raw log: %w", err)
	}
	return nil
}

func milliOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// AddEvent queues an event for a running app.
func (a *ApplyTx) AddEvent(app, typ string, data []byte) (int64, error) {
	return addEvent(a.ctx, a.tx, a.phone, app, typ, data, a.now)
}

// Running reports whether app counts as running now, and whether it is in
// the foreground.
func (a *ApplyTx) Running(app string) (running, foreground bool, err error) {
	if st, ok := a.apps[app]; ok {
		return st.running, st.foreground, nil
	}
	running, foreground, err = a.running(app)
	if err != nil {
		return false, false, err
	}
	if a.apps == nil {
		a.apps = map[string]appState{}
	}
	a.apps[app] = appState{running, foreground}
	return running, foreground, nil
}

func (a *ApplyTx) running(app string) (running, foreground bool, err error) {
	var until int64
	err = a.tx.QueryRowContext(a.ctx, qRunning, a.phone, app).Scan(&until, &foreground)
	if errors.Is(err, sql.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("storage: running: %w", err)
	}
	running = until > a.now.UnixMilli()
	return running, running && foreground, nil
}

// Count adds delta to a counter when the transaction commits.
func (a *ApplyTx) Count(name string, delta int64) error {
	for i := range a.counts {
		if a.counts[i].name == name {
			a.counts[i].delta += delta
			return nil
		}
	}
	a.counts = append(a.counts, counterDelta{name, delta})
	return nil
}

func (a *ApplyTx) flushCounts() error {
	for _, c := range a.counts {
		if _, err := a.tx.ExecContext(a.ctx, qCount, a.phone, c.name, c.delta); err != nil {
			return fmt.Errorf("storage: count: %w", err)
		}
	}
	return nil
}

// CapRunning limits every app's running period to until: after a restart,
// apps that were running get a grace period to reconnect, not forever.
func (s *DeviceStore) CapRunning(ctx context.Context, until time.Time) error {
	if _, err := s.db.ExecContext(ctx, `UPDATE apps SET running_until = ? WHERE phone = ? AND running_until > ?`, until.UnixMilli(), s.phone, until.UnixMilli()); err != nil {
		return fmt.Errorf("storage: cap running: %w", err)
	}
	return nil
}

// RunningApps lists the apps running at now.
func (s *DeviceStore) RunningApps(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT app FROM apps WHERE phone = ? AND running_until > ? ORDER BY app`, s.phone, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("storage: running apps: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Heartbeat is what the link learned about one network's idle timeout.
type Heartbeat struct {
	Network   string
	Interval  time.Duration
	Good, Bad time.Duration
	Settled   bool
	// NextProbe is when the link next tries a longer interval (zero:
	// never); Hold how long the proven interval holds before it; Rung
	// which probe length comes next; Failed when heartbeats went
	// unanswered over the last day.
	NextProbe time.Time
	Hold      time.Duration
	Rung      int
	Failed    []time.Time
	UpdatedAt time.Time
}

// maxFailedKept bounds the failures stored per network (the link keeps
// fewer).
const maxFailedKept = 1024

// Heartbeat returns what was learned on network, or ErrNotFound.
func (s *DeviceStore) Heartbeat(ctx context.Context, network string) (Heartbeat, error) {
	h := Heartbeat{Network: network}
	var interval, good, bad, updated, nextProbe, hold int64
	var failed string
	err := s.db.QueryRowContext(ctx, `SELECT interval_ms, good_ms, bad_ms, settled, updated_at, next_probe_ns, hold_ms, rung, failed_ns
		FROM heartbeats WHERE phone = ? AND network = ?`, s.phone, network).
		Scan(&interval, &good, &bad, &h.Settled, &updated, &nextProbe, &hold, &h.Rung, &failed)
	if errors.Is(err, sql.ErrNoRows) {
		return h, ErrNotFound
	}
	if err != nil {
		return h, fmt.Errorf("storage: heartbeat: %w", err)
	}
	h.Interval, h.Good, h.Bad = time.Duration(interval)*time.Millisecond, time.Duration(good)*time.Millisecond, time.Duration(bad)*time.Millisecond
	h.Hold = time.Duration(hold) * time.Millisecond
	if nextProbe != 0 {
		h.NextProbe = time.Unix(0, nextProbe)
	}
	var ns []int64
	if err := json.Unmarshal([]byte(failed), &ns); err != nil {
		return h, fmt.Errorf("storage: heartbeat of %q: failed probes: %w", network, err)
	}
	for _, n := range ns[max(0, len(ns)-maxFailedKept):] {
		h.Failed = append(h.Failed, time.Unix(0, n))
	}
	h.UpdatedAt = time.UnixMilli(updated)
	return h, nil
}

// SaveHeartbeat records what was learned on h.Network.
func (s *DeviceStore) SaveHeartbeat(ctx context.Context, h Heartbeat) error {
	var nextProbe int64
	if !h.NextProbe.IsZero() {
		nextProbe = h.NextProbe.UnixNano()
	}
	ns := []int64{}
	for _, t := range h.Failed[max(0, len(h.Failed)-maxFailedKept):] {
		ns = append(ns, t.UnixNano())
	}
	failed, err := json.Marshal(ns)
	if err != nil {
		return fmt.Errorf("storage: save heartbeat: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO heartbeats (phone, network, interval_ms, good_ms, bad_ms, settled, updated_at, next_probe_ns, hold_ms, rung, failed_ns)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (phone, network) DO UPDATE SET interval_ms = excluded.interval_ms, good_ms = excluded.good_ms, bad_ms = excluded.bad_ms,
		settled = excluded.settled, updated_at = excluded.updated_at, next_probe_ns = excluded.next_probe_ns, hold_ms = excluded.hold_ms,
		rung = excluded.rung, failed_ns = excluded.failed_ns`,
		s.phone, h.Network, h.Interval.Milliseconds(), h.Good.Milliseconds(), h.Bad.Milliseconds(), h.Settled, h.UpdatedAt.UnixMilli(),
		nextProbe, h.Hold.Milliseconds(), h.Rung, string(failed))
	if err != nil {
		return fmt.Errorf("storage: save heartbeat: %w", err)
	}
	return nil
}

// Pruned counts what Prune deleted.
type Pruned struct {
	Toasts, Events int64
}

// Prune bounds the phone's history: toasts beyond the newest toastsKept
// or received before toastsBefore, and each app's events beyond its newest
// eventsKept or created before eventsBefore. Counters toasts_pruned and
// events_pruned grow by what it deletes, in the same transaction.
func (s *DeviceStore) Prune(ctx context.Context, toastsKept int, toastsBefore time.Time, eventsKept int, eventsBefore time.Time) (Pruned, error) {
	var p Pruned
	if toastsKept < 1 || eventsKept < 1 {
		return p, fmt.Errorf("storage: prune: keep %d toasts and %d events: both must be positive", toastsKept, eventsKept)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return p, fmt.Errorf("storage: prune: %w", err)
	}
	defer tx.Rollback()
	// The newest rows are found through the (phone, app, id) indexes;
	// with fewer rows than kept the subquery is NULL and only age counts.
	res, err := tx.ExecContext(ctx, `DELETE FROM toasts WHERE phone = ?1 AND (received_at < ?2 OR id <=
		(SELECT id FROM toasts WHERE phone = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?3))`, s.phone, toastsBefore.UnixMilli(), toastsKept)
	if err != nil {
		return p, fmt.Errorf("storage: prune toasts: %w", err)
	}
	if p.Toasts, err = res.RowsAffected(); err != nil {
		return p, fmt.Errorf("storage: prune toasts: %w", err)
	}
	res, err = tx.ExecContext(ctx, `DELETE FROM events WHERE phone = ?1 AND (created_at < ?2 OR id <=
		(SELECT e.id FROM events e WHERE e.phone = ?1 AND e.app = events.app ORDER BY e.id DESC LIMIT 1 OFFSET ?3))`,
		s.phone, eventsBefore.UnixMilli(), eventsKept)
	if err != nil {
		return p, fmt.Errorf("storage: prune events: %w", err)
	}
	if p.Events, err = res.RowsAffected(); err != nil {
		return p, fmt.Errorf("storage: prune events: %w", err)
	}
	for _, c := range []struct {
		name string
		n    int64
	}{{"toasts_pruned", p.Toasts}, {"events_pruned", p.Events}} {
		if c.n == 0 {
			continue
		}
		if _, err := tx.ExecContext(ctx, qCount, s.phone, c.name, c.n); err != nil {
			return p, fmt.Errorf("storage: prune: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return p, fmt.Errorf("storage: prune: %w", err)
	}
	return p, nil
}
