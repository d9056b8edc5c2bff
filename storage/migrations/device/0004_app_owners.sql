-- The Unix user each app id belongs to: the first user whose process
-- opened the app's channel (or ran its event stream) over the local API.
-- Other users are refused that app id; root and the daemon's own user are
-- not bound by it. An owner outlives the channel: closing a channel does
-- not free its app id for another user.
CREATE TABLE app_owners (
    phone      TEXT NOT NULL,
    app        TEXT NOT NULL,
    uid        INTEGER NOT NULL,
    claimed_at INTEGER NOT NULL,
    PRIMARY KEY (phone, app)
);
