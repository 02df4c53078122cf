-- One text for both databases (migrations/sqlite/0006 is a link to this file).
-- Alerts on their way out (pool-server/src/notify/outbox.rs). A row is written before it is
-- sent. Rows due together for one destination and group (an account's rigs going down at
-- once) are bound into one message (message_id) before the first attempt, so a retry, or a
-- resend after a restart or a kill, is the same message with the same id, which receivers
-- get as the Idempotency-Key header. A confirmed message (2xx) is never sent again.
CREATE TABLE notify_outbox (
    id          TEXT PRIMARY KEY,
    destination TEXT NOT NULL,
    group_key   TEXT NOT NULL,
    alert       TEXT NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    due_ms      BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    sent_ms     BIGINT,
    message_id  TEXT,
    last_error  TEXT
);
CREATE INDEX notify_outbox_due ON notify_outbox (state, due_ms);
CREATE INDEX notify_outbox_message ON notify_outbox (message_id);
