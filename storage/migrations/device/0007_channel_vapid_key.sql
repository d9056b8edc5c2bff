-- A channel restricted to one Web Push application server keeps its key,
-- so that re-registering after a reconnection asks for the same channel.
ALTER TABLE channels ADD COLUMN vapid_key TEXT NOT NULL DEFAULT '';
