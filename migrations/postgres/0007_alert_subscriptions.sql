-- One text for both databases (migrations/sqlite/0007 is a link to this file).
-- Miners' own alert subscriptions (pool-server/src/notify/subscriptions.rs). An account's key
-- is set by its miner from the Stratum password (`key=SECRET`, the first one wins) and kept as
-- a SHA-256 digest; with it the miner manages the account's subscriptions through the API.
CREATE TABLE account_keys (
    account  TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL,
    set_ms   BIGINT NOT NULL
);
CREATE TABLE alert_subscriptions (
    id         TEXT PRIMARY KEY,
    account    TEXT NOT NULL,
    url        TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX alert_subscriptions_account ON alert_subscriptions (account);
