-- Web Push: a message's expiry (unix milliseconds; 0 = never) and a
-- channel's application server key (unpadded base64url; '' = none).
ALTER TABLE queue ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE channels ADD COLUMN vapid_key TEXT NOT NULL DEFAULT '';
CREATE INDEX queue_expires ON queue (expires_at) WHERE expires_at > 0;
