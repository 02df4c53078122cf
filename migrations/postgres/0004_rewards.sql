-- Rewards: what each block found by the pool credits to each account, computed once and kept
-- (auditable), the state of those credits as the block matures or leaves the best chain, and
-- the payouts that pay the balances. Amounts are integer satoshis.

-- Where an account is paid when its name is not itself an address (set by the admin API).
CREATE TABLE accounts (
    name       TEXT PRIMARY KEY,
    address    TEXT,
    updated_at TIMESTAMPTZ NOT NULL
);

-- One row per block credited: how its reward was shared and where its credits stand.
-- state: `immature` (fewer than --maturity confirmations), `mature` (final), `void` (the block
-- left the best chain; its credits count for nothing unless it returns before maturity).
CREATE TABLE block_rewards (
    block_hash          TEXT PRIMARY KEY,
    height              BIGINT NOT NULL,
    chain               TEXT NOT NULL,
    scheme              TEXT NOT NULL,
    reward_sats         BIGINT NOT NULL,
    fee_bps             INTEGER NOT NULL,
    fee_sats            BIGINT NOT NULL,
    -- The work the window asked for and the work found in it (difficulty units), and the
    -- accepted shares counted; the window's oldest and newest share times (unix microseconds).
    window_difficulty   DOUBLE PRECISION NOT NULL,
    credited_difficulty DOUBLE PRECISION NOT NULL,
    shares              BIGINT NOT NULL,
    window_start_us     BIGINT,
    window_end_us       BIGINT NOT NULL,
    state               TEXT NOT NULL,
    confirmations       BIGINT NOT NULL,
    credited_at         TIMESTAMPTZ NOT NULL,
    state_at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX block_rewards_state ON block_rewards (state);

CREATE TABLE block_credits (
    block_hash TEXT NOT NULL,
    account    TEXT NOT NULL,
    sats       BIGINT NOT NULL,
    difficulty DOUBLE PRECISION NOT NULL,
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
    total_sats BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    settled_at TIMESTAMPTZ
);
CREATE INDEX payouts_state ON payouts (state);

CREATE TABLE payout_items (
    payout_id TEXT NOT NULL,
    account   TEXT NOT NULL,
    address   TEXT NOT NULL,
    sats      BIGINT NOT NULL,
    PRIMARY KEY (payout_id, account)
);
CREATE INDEX payout_items_account ON payout_items (account);
