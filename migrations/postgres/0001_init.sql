-- Every share, accepted or rejected, with who sent it and what it was worth.
CREATE TABLE shares (
    id                  UUID PRIMARY KEY,
    worker              TEXT NOT NULL,
    session_id          BIGINT NOT NULL,
    job_id              TEXT NOT NULL,
    height              BIGINT NOT NULL,
    assigned_difficulty DOUBLE PRECISION NOT NULL,
    achieved_difficulty DOUBLE PRECISION NOT NULL,
    accepted            BOOLEAN NOT NULL,
    reason              TEXT,
    block_hash          TEXT,
    created_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX shares_worker_created ON shares (worker, created_at DESC);
CREATE INDEX shares_created ON shares (created_at DESC);

-- One row per worker name (account.rig), with running totals kept by the share writer.
CREATE TABLE workers (
    name                TEXT PRIMARY KEY,
    account             TEXT NOT NULL,
    first_seen          TIMESTAMPTZ NOT NULL,
    last_seen           TIMESTAMPTZ NOT NULL,
    accepted_shares     BIGINT NOT NULL DEFAULT 0,
    rejected_shares     BIGINT NOT NULL DEFAULT 0,
    accepted_difficulty DOUBLE PRECISION NOT NULL DEFAULT 0
);

-- Every block a share found, with what the chain or node said. The embedded chain resumes
-- from its accepted rows (chain = 'embedded').
CREATE TABLE blocks (
    hash               TEXT PRIMARY KEY,
    height             BIGINT NOT NULL,
    prev_hash          TEXT NOT NULL,
    chain              TEXT NOT NULL,
    worker             TEXT,
    network_difficulty DOUBLE PRECISION NOT NULL,
    status             TEXT NOT NULL,
    detail             TEXT,
    raw                BYTEA NOT NULL,
    found_at           TIMESTAMPTZ NOT NULL
);
CREATE INDEX blocks_chain_height ON blocks (chain, height DESC);
