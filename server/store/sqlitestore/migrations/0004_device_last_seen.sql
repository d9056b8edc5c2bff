-- Devices that never come back are deleted after a time; they are found by
-- when they were last seen.
CREATE INDEX devices_last_seen ON devices(last_seen);
