-- One text for both databases (migrations/sqlite/0009 is a link to this file).
-- Silences (pool-server/src/notify/silences.rs): alerts matching one are not sent until
-- ends_ms. account is the account whose miner made it (with its key), NULL for the operator.
CREATE TABLE alert_silences (
    id         TEXT PRIMARY KEY,
    matchers   TEXT NOT NULL,
    account    TEXT,
    ends_ms    BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    comment    TEXT NOT NULL
);
CREATE INDEX alert_silences_ends ON alert_silences (ends_ms);
