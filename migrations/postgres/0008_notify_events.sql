-- One text for both databases (migrations/sqlite/0008 is a link to this file).
-- Events told (pool-server/src/notify/events.rs): a block found, a payout sent or failed, a
-- block's reward matured, each under a key written in the same transaction as its outbox
-- rows, so each is told once. The row 'since' holds the first start with events (nothing
-- from before it is told).
CREATE TABLE notify_events (
    key   TEXT PRIMARY KEY,
    at_ms BIGINT NOT NULL
);
CREATE INDEX notify_events_at ON notify_events (at_ms);
