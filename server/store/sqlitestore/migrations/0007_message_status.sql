-- A Web Push message's urgency (an mpns.Urgency: -2 very-low … 1 high, 0
-- normal): a device whose minimum is above it is not sent it yet.
ALTER TABLE queue ADD COLUMN urgency INTEGER NOT NULL DEFAULT 0;

-- What became of a notification a sender named with a message id, once it
-- left the queue: delivered (acknowledged), cancelled or expired. Kept for
-- store.OutcomeRetention, at most store.MaxOutcomesPerChannel per channel.
CREATE TABLE message_outcomes (
    channel_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    state      TEXT NOT NULL,
    at         INTEGER NOT NULL, -- unix milliseconds
    PRIMARY KEY (channel_id, message_id)
) WITHOUT ROWID;
CREATE INDEX message_outcomes_at ON message_outcomes(at);
