-- The durable floor's one table: a notification from its commit until
-- its device acknowledges it. Not unique on (device, seq): a device
-- that reconnects numbers on from what it applied, so a number may come
-- again while a row of the old connection, never acknowledged, is left.
CREATE TABLE notifications (
	device  TEXT    NOT NULL,
	seq     INTEGER NOT NULL,
	channel TEXT    NOT NULL,
	body    BLOB    NOT NULL
);
CREATE INDEX notifications_by_device ON notifications (device, seq);
