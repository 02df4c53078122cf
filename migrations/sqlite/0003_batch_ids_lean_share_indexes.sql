-- A share row no longer carries a unique key: the pool writes each batch exactly once by the
-- batch's id (recorded in `share_batches` in the same transaction as its shares). `shares`
-- becomes a rowid table, so rows append in the order they are stored, with one index, by
-- worker (SQLite appends the rowid to it, which orders a worker's shares too).

CREATE TABLE share_batches (
    id        TEXT PRIMARY KEY,
    stored_at INTEGER NOT NULL,
    shares    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE shares_v3 (
    created_at          INTEGER NOT NULL,
    id                  BLOB NOT NULL,
    worker_id           INTEGER NOT NULL,
    reason              INTEGER NOT NULL,
    height              INTEGER NOT NULL,
    session_id          INTEGER NOT NULL,
    job                 INTEGER,
    job_text            TEXT,
    assigned_difficulty REAL NOT NULL,
    achieved_difficulty REAL NOT NULL,
    block_hash          BLOB
);
INSERT INTO shares_v3 (created_at, id, worker_id, reason, height, session_id, job, job_text,
                       assigned_difficulty, achieved_difficulty, block_hash)
SELECT created_at, id, worker_id, reason, height, session_id, job, job_text,
       assigned_difficulty, achieved_difficulty, block_hash
FROM shares ORDER BY created_at, id;
DROP TABLE shares;
ALTER TABLE shares_v3 RENAME TO shares;
CREATE INDEX shares_worker ON shares (worker_id);
