-- Raw notifications as the phone received them, whether a running app took
-- them, its background handler was to run, or they were dropped: what the
-- start screen's raw panel and test tools read. Only the newest few per app
-- are kept (storage.RawLogPerApp).
CREATE TABLE raw_log (
    id          INTEGER PRIMARY KEY,
    phone       TEXT NOT NULL,
    app         TEXT NOT NULL,
    message_id  TEXT NOT NULL DEFAULT '',
    body        BLOB NOT NULL,
    outcome     TEXT NOT NULL,             -- 'app', 'handler' or 'dropped'
    seq         INTEGER NOT NULL,
    sent_at     INTEGER NOT NULL DEFAULT 0, -- unix ms the service accepted the sender's POST; 0: not known
    received_at INTEGER NOT NULL
);
CREATE INDEX raw_log_app ON raw_log(phone, app, id);

-- When the sender's POST was accepted, beside when the phone received the
-- toast (unix ms; 0 for toasts from before, or from a service that does
-- not say).
ALTER TABLE toasts ADD COLUMN sent_at INTEGER NOT NULL DEFAULT 0;
