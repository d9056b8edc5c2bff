-- Upward probes of a settled heartbeat: when the link next tries a longer
-- interval (Unix nanoseconds, 0: never), how long the proven interval
-- holds before it (doubling after each failed probe), which probe length
-- comes next (0: 2x, 1: 1.5x, 2: 1.25x), and when heartbeats went
-- unanswered over the last day (a JSON array of Unix nanoseconds).
ALTER TABLE heartbeats ADD COLUMN next_probe_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE heartbeats ADD COLUMN hold_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE heartbeats ADD COLUMN rung INTEGER NOT NULL DEFAULT 0;
ALTER TABLE heartbeats ADD COLUMN failed_ns TEXT NOT NULL DEFAULT '[]';
