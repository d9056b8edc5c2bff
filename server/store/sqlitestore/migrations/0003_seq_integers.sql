-- Sequence numbers are integers from 0 to 2^63-1. An ack of 2^63-1 once
-- made next_seq = max(next_seq, ? + 1) overflow into a REAL, which failed
-- every group transaction that numbered a notification for that device.
-- Such rows are repaired: an acked_seq out of range can only have come from
-- a device acknowledging what it was never sent, so it goes back to 0, and
-- next_seq goes on above everything still queued or acknowledged.
UPDATE devices SET acked_seq = 0
    WHERE typeof(acked_seq) != 'integer' OR acked_seq < 0 OR acked_seq > 9223372036854775806;
UPDATE devices SET next_seq = max(acked_seq, coalesce((SELECT max(seq) FROM queue WHERE queue.device_id = devices.id), 0)) + 1
    WHERE typeof(next_seq) != 'integer' OR next_seq < 1;

-- SQLite cannot add a CHECK to an existing table without rebuilding it (and
-- dropping devices would cascade to channels), so triggers hold the line:
-- a statement that would store a sequence number as anything but an
-- integer fails alone, before it is written.
CREATE TRIGGER devices_seq_insert BEFORE INSERT ON devices
    WHEN typeof(NEW.next_seq) != 'integer' OR typeof(NEW.acked_seq) != 'integer'
BEGIN
    SELECT RAISE(ABORT, 'sequence numbers must be integers');
END;
CREATE TRIGGER devices_seq_update BEFORE UPDATE OF next_seq, acked_seq ON devices
    WHEN typeof(NEW.next_seq) != 'integer' OR typeof(NEW.acked_seq) != 'integer'
BEGIN
    SELECT RAISE(ABORT, 'sequence numbers must be integers');
END;
CREATE TRIGGER queue_seq_insert BEFORE INSERT ON queue
    WHEN typeof(NEW.seq) != 'integer'
BEGIN
    SELECT RAISE(ABORT, 'sequence numbers must be integers');
END;
