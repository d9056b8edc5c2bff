-- UnifiedPush registrations: a Linux app (a D-Bus service) registered a
-- token with the daemon's distributor and got a Herald channel for it, kept
-- under app. They outlive the daemon, which announces each endpoint again
-- when it starts.
CREATE TABLE unifiedpush (
    phone       TEXT NOT NULL,
    token       TEXT NOT NULL,
    service     TEXT NOT NULL,             -- the app's D-Bus name
    app         TEXT NOT NULL,             -- the Herald app id its channel is under
    description TEXT NOT NULL DEFAULT '',
    vapid       TEXT NOT NULL DEFAULT '',
    version     INTEGER NOT NULL,          -- the connector interface: 1 or 2
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (phone, token)
);
CREATE UNIQUE INDEX unifiedpush_app ON unifiedpush(phone, app);

-- Messages for a UnifiedPush app, written in the apply transaction and
-- deleted once the app acknowledged them, so each reaches the app at least
-- once across crashes and restarts.
CREATE TABLE unifiedpush_outbox (
    id          INTEGER PRIMARY KEY,
    phone       TEXT NOT NULL,
    token       TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    body        BLOB NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX unifiedpush_outbox_token ON unifiedpush_outbox(phone, token, id);
