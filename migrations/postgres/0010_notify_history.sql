-- One text for both databases (migrations/sqlite/0010 is a link to this file).
-- The delivery history (GET /api/accounts/{name}/deliveries) reads a destination's newest
-- rows; the sender deletes confirmed and given-up rows after 30 days.
CREATE INDEX notify_outbox_destination ON notify_outbox (destination, created_ms);
CREATE INDEX notify_outbox_created ON notify_outbox (created_ms);
