-- Rewards: what each block found by the pool credits to each account, computed once and kept
-- (auditable), the state of those credits as the block matures or leaves the best chain, and
-- the payouts that pay the balances. Amounts are integer satoshis.

-- Where an account is paid when its name is not itself an address (set by the admin API).
CREATE TABLE accounts (
    name       TEXT PRIMARY KEY,
    address    TEXT,
    updated_at TEXT NOT NULL
);

-- One row per block credited: how its reward was shared and where its credits stand.
-- state: `immature` (fewer than --maturity confirmations), `mature` (final), `void` (the block
-- left the best chain; its credits count for nothing unless it returns before maturity).
CREATE TABLE block_rewards (
    block_hash          TEXT PRIMARY KEY,
    height              INTEGER NOT NULL,
    chain               TEXT NOT NULL,
    scheme              TEXT NOT NULL,
    reward_sats         INTEGER NOT NULL,
    fee_bps             INTEGER NOT NULL,
    fee_sats            INTEGER NOT NULL,
    -- The work the window asked for and the work found in it (difficulty units), and the
    -- accepted shares counted; the window's oldest and newest share times (unix microseconds).
    window_difficulty   REAL NOT NULL,
    credited_difficulty REAL NOT NULL,
    shares              INTEGER NOT NULL,
    window_start_us     INTEGER,
    window_end_us       INTEGER NOT NULL,
    state               TEXT NOT NULL,
    confirmations       INTEGER NOT NULL,
    credited_at         TEXT NOT NULL,
    state_at            TEXT NOT NULL
);
CREATE INDEX block_rewards_state ON block_rewards (state);

CREATE TABLE block_credits (
    block_hash TEXT NOT NULL,
    account    TEXT NOT NULL,
    sats       INTEGER NOT NULL,
    difficulty REAL NOT NULL,
    PRIMARY KEY (block_hash, account)
);
CREATE INDEX block_credits_account ON block_credits (account);

-- A payout run: recorded `pending` with its id before anything is sent, `sent` with the txid
-- after, `failed` when the node refused it (its items then count for nothing).
CREATE TABLE payouts (
    id         TEXT PRIMARY KEY,
    method     TEXT NOT NULL,
    state      TEXT NOT NULL,
    txid       TEXT,
    detail     TEXT,
    total_sats INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    settled_at TEXT
);
CREATE INDEX payouts_state ON payouts (state);

CREATE TABLE payout_items (
    payout_id TEXT NOT NULL,
    account   TEXT NOT NULL,
    address   TEXT NOT NULL,
    sats      INTEGER NOT NULL,
    PRIMARY KEY (payout_id, account)
);
CREATE INDEX payout_items_account ON payout_items (account);

-- The PPLNS and PROP windows walk accepted shares back in time from a block (PostgreSQL's
-- BRIN index on created_at serves the same walk).
CREATE INDEX shares_accepted_at ON shares (created_at) WHERE reason = 0;
