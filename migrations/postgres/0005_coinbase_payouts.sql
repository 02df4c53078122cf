-- Coinbase payouts (--payout-method coinbase): each job's coinbase pays the window's accounts
-- directly. A block found that way is credited from the plan its job was built with (stored
-- here before the block is submitted), not from a window recomputed later, and each credit
-- says what the coinbase paid the account: its own part plus any balance carried over from
-- earlier blocks (carry_sats). paid_sats is 0 when the account got no output (below
-- --dust-limit, no address, past --max-coinbase-outputs): its credit then waits as balance.
ALTER TABLE block_credits ADD COLUMN carry_sats BIGINT NOT NULL DEFAULT 0;
ALTER TABLE block_credits ADD COLUMN paid_sats BIGINT NOT NULL DEFAULT 0;
ALTER TABLE block_credits ADD COLUMN address TEXT;

-- How the block paid: 'balance' (credits wait for a wallet payout) or 'coinbase'; for the
-- latter, what the pool's own output (--pool-fee-address) took.
ALTER TABLE block_rewards ADD COLUMN payout TEXT NOT NULL DEFAULT 'balance';
ALTER TABLE block_rewards ADD COLUMN pool_sats BIGINT;

-- The plan of the job that found a block (JSON), written before the block is submitted so
-- that no later job, on this pool-server or another one on the database, pays the same
-- carried balance again.
CREATE TABLE block_plans (
    block_hash TEXT PRIMARY KEY,
    plan       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX block_plans_created ON block_plans (created_at);
