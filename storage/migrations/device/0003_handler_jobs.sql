-- Background handler jobs: a raw notification for an app that is not
-- running but declared a handler. The row is written in the transaction
-- that applies the notification, so each notification makes exactly one
-- job; the daemon runs it after the commit and deletes it when it is done.
CREATE TABLE handler_jobs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    phone      TEXT NOT NULL,
    app        TEXT NOT NULL,
    message_id TEXT NOT NULL DEFAULT '',
    seq        INTEGER NOT NULL,
    body       BLOB NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0, -- runs started, including one a crash interrupted
    running    INTEGER NOT NULL DEFAULT 0, -- 1 while a run is in progress (or was, before a crash)
    created_at INTEGER NOT NULL
);
CREATE INDEX handler_jobs_pending ON handler_jobs(phone, running, id);
CREATE INDEX handler_jobs_app ON handler_jobs(phone, app);
