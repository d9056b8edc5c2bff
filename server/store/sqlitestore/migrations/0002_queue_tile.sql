-- Queued tile updates are looked up by tile, so a new update to the same tile
-- merges into the one waiting instead of adding a queue entry.
CREATE INDEX queue_tile ON queue(device_id, tile_key) WHERE tile_key != '';
