-- Devices enrolled with the service. The secret is kept only as a hash.
CREATE TABLE devices (
    id          TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    source      TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,          -- unix milliseconds
    last_seen   INTEGER NOT NULL,          -- unix milliseconds
    power       TEXT NOT NULL DEFAULT 'normal',
    next_seq    INTEGER NOT NULL DEFAULT 1, -- the sequence number the next notification gets
    acked_seq   INTEGER NOT NULL DEFAULT 0  -- everything up to here is applied on the device
);
CREATE INDEX devices_source ON devices(source);

-- One channel per app per device; the token is the secret part of its URI.
CREATE TABLE channels (
    id           TEXT PRIMARY KEY,
    device_id    TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    app          TEXT NOT NULL,
    name         TEXT NOT NULL,
    token        TEXT NOT NULL UNIQUE,
    service_name TEXT NOT NULL DEFAULT '',
    toast        INTEGER NOT NULL DEFAULT 0,
    tile         INTEGER NOT NULL DEFAULT 0,
    domains      TEXT NOT NULL DEFAULT '[]', -- JSON array of allowed image base URIs
    pinned       TEXT NOT NULL DEFAULT '[]', -- JSON array of pinned secondary tile ids
    created_at   INTEGER NOT NULL,
    UNIQUE (device_id, app)
);

-- Notifications answered Received and not yet acknowledged by the device.
CREATE TABLE queue (
    device_id   TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    channel_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    class       INTEGER NOT NULL,
    message_id  TEXT NOT NULL DEFAULT '',
    body        BLOB NOT NULL,
    tile_key    TEXT NOT NULL DEFAULT '',  -- channel id and tile id, for merging queued tile updates
    accepted_at INTEGER NOT NULL,          -- unix milliseconds
    due_at      INTEGER NOT NULL,          -- unix milliseconds: the class's delivery deadline
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
