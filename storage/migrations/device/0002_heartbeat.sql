-- What the link learned about each network's NAT idle timeout, so that a
-- known network starts at its heartbeat after a restart. Durations in
-- milliseconds; good/bad are the longest idle interval seen to survive and
-- the shortest seen to die (0: not seen).
CREATE TABLE heartbeats (
    phone       TEXT NOT NULL,
    network     TEXT NOT NULL,
    interval_ms INTEGER NOT NULL,
    good_ms     INTEGER NOT NULL DEFAULT 0,
    bad_ms      INTEGER NOT NULL DEFAULT 0,
    settled     INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (phone, network)
);
