-- One database can hold several phones (the emulator keeps many in one
-- file); every table is keyed by the phone's name, '' for a real device.

-- The phone's identity with one notification service, and how far it has
-- applied that service's notifications.
CREATE TABLE identity (
    phone       TEXT NOT NULL,
    service     TEXT NOT NULL,  -- the service's base URL
    device_id   TEXT NOT NULL,
    secret      TEXT NOT NULL,
    applied_seq INTEGER NOT NULL DEFAULT 0,
    enrolled_at INTEGER NOT NULL,
    PRIMARY KEY (phone, service)
);

-- One channel per app (MPNS: one HttpNotificationChannel per app).
CREATE TABLE channels (
    phone        TEXT NOT NULL,
    app          TEXT NOT NULL,
    name         TEXT NOT NULL,
    channel_id   TEXT NOT NULL,
    uri          TEXT NOT NULL,
    service_name TEXT NOT NULL DEFAULT '',
    toast        INTEGER NOT NULL DEFAULT 0,
    tile         INTEGER NOT NULL DEFAULT 0,
    domains      TEXT NOT NULL DEFAULT '[]',
    pinned       TEXT NOT NULL DEFAULT '[]',
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (phone, app)
);
CREATE INDEX channels_channel_id ON channels(phone, channel_id);

-- Live tile state: '' is the app's primary tile, other ids are secondary tiles.
CREATE TABLE tiles (
    phone      TEXT NOT NULL,
    app        TEXT NOT NULL,
    tile_id    TEXT NOT NULL,
    template   TEXT NOT NULL DEFAULT '',
    fields     TEXT NOT NULL DEFAULT '{}', -- JSON object name → value
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (phone, app, tile_id)
);

-- Every toast received, whether the shell showed it or the app took it.
CREATE TABLE toasts (
    id          INTEGER PRIMARY KEY,
    phone       TEXT NOT NULL,
    app         TEXT NOT NULL,
    text1       TEXT NOT NULL DEFAULT '',
    text2       TEXT NOT NULL DEFAULT '',
    param       TEXT NOT NULL DEFAULT '',
    sound       TEXT NOT NULL DEFAULT '',
    silent      INTEGER NOT NULL DEFAULT 0,
    shown_by    TEXT NOT NULL,             -- 'shell' or 'app'
    message_id  TEXT NOT NULL DEFAULT '',
    seq         INTEGER NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX toasts_app ON toasts(phone, app, id);

-- Events waiting for a running app to take them (raw notifications, toasts
-- in the foreground, URI changes). Deleted when the app acknowledges them.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    phone      TEXT NOT NULL,
    app        TEXT NOT NULL,
    type       TEXT NOT NULL,
    data       TEXT NOT NULL,              -- JSON of the event
    created_at INTEGER NOT NULL
);
CREATE INDEX events_app ON events(phone, app, id);

-- Apps that are running: an app holding its event stream, or one whose
-- stream broke less than a grace period ago (so a daemon restart does not
-- make a running app miss its raw notifications).
CREATE TABLE apps (
    phone         TEXT NOT NULL,
    app           TEXT NOT NULL,
    running_until INTEGER NOT NULL DEFAULT 0, -- unix milliseconds; 0 = not running
    foreground    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (phone, app)
);

-- Counters that outlive restarts (raw dropped, tile errors, ...).
CREATE TABLE counters (
    phone TEXT NOT NULL,
    name  TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (phone, name)
);

-- Settings kept across restarts (power level override, ...).
CREATE TABLE settings (
    phone TEXT NOT NULL,
    name  TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (phone, name)
);
