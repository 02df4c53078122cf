-- Same schema as migrations/postgres, in SQLite's types (UUIDs as blobs, times as RFC 3339).
CREATE TABLE shares (
    id                  BLOB PRIMARY KEY,
    worker              TEXT NOT NULL,
    session_id          INTEGER NOT NULL,
    job_id              TEXT NOT NULL,
    height              INTEGER NOT NULL,
    assigned_difficulty REAL NOT NULL,
    achieved_difficulty REAL NOT NULL,
    accepted            INTEGER NOT NULL,
    reason              TEXT,
    block_hash          TEXT,
    created_at          TEXT NOT NULL
);
CREATE INDEX shares_worker_created ON shares (worker, created_at DESC);
CREATE INDEX shares_created ON shares (created_at DESC);

CREATE TABLE workers (
    name                TEXT PRIMARY KEY,
    account             TEXT NOT NULL,
    first_seen          TEXT NOT NULL,
    last_seen           TEXT NOT NULL,
    accepted_shares     INTEGER NOT NULL DEFAULT 0,
    rejected_shares     INTEGER NOT NULL DEFAULT 0,
    accepted_difficulty REAL NOT NULL DEFAULT 0
);

CREATE TABLE blocks (
    hash               TEXT PRIMARY KEY,
    height             INTEGER NOT NULL,
    prev_hash          TEXT NOT NULL,
    chain              TEXT NOT NULL,
    worker             TEXT,
    network_difficulty REAL NOT NULL,
    status             TEXT NOT NULL,
    detail             TEXT,
    raw                BLOB NOT NULL,
    found_at           TEXT NOT NULL
);
CREATE INDEX blocks_chain_height ON blocks (chain, height DESC);
