-- A retired device keeps its row (and key) so that the service can prove to
-- it, when it comes back, that it is refused for good; its channels and queue
-- are gone. 0: not retired; else unix milliseconds.
ALTER TABLE devices ADD COLUMN retired_at INTEGER NOT NULL DEFAULT 0;
