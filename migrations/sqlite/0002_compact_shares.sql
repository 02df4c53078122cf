-- The PostgreSQL 0002 layout in SQLite's terms: compact share rows keyed by time (so inserts
-- append), an integer worker id, reason codes, and per-minute / per-hour rollups per worker
-- (worker 0: the whole pool). No partitions: retention deletes old rows in batches. Times of
-- shares and rollups are integers (unix microseconds for shares, unix seconds for rollups).

CREATE TABLE workers_v2 (
    id                  INTEGER PRIMARY KEY,
    name                TEXT NOT NULL UNIQUE,
    account             TEXT NOT NULL,
    first_seen          TEXT NOT NULL,
    last_seen           TEXT NOT NULL,
    accepted_shares     INTEGER NOT NULL DEFAULT 0,
    rejected_shares     INTEGER NOT NULL DEFAULT 0,
    accepted_difficulty REAL NOT NULL DEFAULT 0
);
INSERT INTO workers_v2 (name, account, first_seen, last_seen, accepted_shares, rejected_shares,
                        accepted_difficulty)
SELECT name, account, first_seen, last_seen, accepted_shares, rejected_shares, accepted_difficulty
FROM workers ORDER BY name;
INSERT OR IGNORE INTO workers_v2 (name, account, first_seen, last_seen)
SELECT worker, substr(worker, 1, instr(worker || '.', '.') - 1), min(created_at), max(created_at)
FROM shares GROUP BY worker;
DROP TABLE workers;
ALTER TABLE workers_v2 RENAME TO workers;

CREATE TABLE share_reasons (
    code  INTEGER PRIMARY KEY,
    label TEXT NOT NULL UNIQUE
);
INSERT INTO share_reasons (code, label) VALUES
    (0, 'accepted'), (1, 'job-not-found'), (2, 'stale'), (3, 'duplicate'),
    (4, 'low-difficulty'), (5, 'unauthorized'), (6, 'not-subscribed'),
    (7, 'bad-extranonce2-size'), (8, 'ntime-out-of-range'), (9, 'bad-version-bits'),
    (10, 'malformed'), (99, 'other');

CREATE TABLE shares_v2 (
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
    block_hash          BLOB,
    PRIMARY KEY (created_at, id)
) WITHOUT ROWID;

-- Old job ids stay text (job_text); new rows store hex ids as integers.
INSERT INTO shares_v2 (created_at, id, worker_id, reason, height, session_id, job, job_text,
                       assigned_difficulty, achieved_difficulty, block_hash)
SELECT CAST(round(unixepoch(s.created_at, 'subsec') * 1000000) AS INTEGER), s.id, w.id,
       CASE WHEN s.accepted THEN 0 ELSE coalesce(r.code, 99) END,
       s.height, s.session_id, NULL, s.job_id, s.assigned_difficulty, s.achieved_difficulty,
       CASE WHEN length(s.block_hash) = 64 THEN unhex(s.block_hash) END
FROM shares s
JOIN workers w ON w.name = s.worker
LEFT JOIN share_reasons r ON r.label = s.reason;
DROP TABLE shares;
ALTER TABLE shares_v2 RENAME TO shares;
CREATE INDEX shares_worker_created ON shares (worker_id, created_at);

CREATE TABLE worker_minutes (
    minute     INTEGER NOT NULL,
    worker_id  INTEGER NOT NULL,
    reason     INTEGER NOT NULL,
    shares     INTEGER NOT NULL,
    difficulty REAL NOT NULL,
    best       REAL NOT NULL,
    PRIMARY KEY (worker_id, minute, reason)
) WITHOUT ROWID;
CREATE INDEX worker_minutes_minute ON worker_minutes (minute);

CREATE TABLE worker_hours (
    hour       INTEGER NOT NULL,
    worker_id  INTEGER NOT NULL,
    reason     INTEGER NOT NULL,
    shares     INTEGER NOT NULL,
    difficulty REAL NOT NULL,
    best       REAL NOT NULL,
    PRIMARY KEY (worker_id, hour, reason)
) WITHOUT ROWID;
CREATE INDEX worker_hours_hour ON worker_hours (hour);

INSERT INTO worker_minutes (minute, worker_id, reason, shares, difficulty, best)
SELECT created_at / 60000000 * 60, w, reason, count(*), sum(assigned_difficulty),
       max(achieved_difficulty)
FROM (SELECT created_at, worker_id AS w, reason, assigned_difficulty, achieved_difficulty
      FROM shares
      UNION ALL
      SELECT created_at, 0, reason, assigned_difficulty, achieved_difficulty FROM shares)
GROUP BY 1, 2, 3;

INSERT INTO worker_hours (hour, worker_id, reason, shares, difficulty, best)
SELECT minute / 3600 * 3600, worker_id, reason, sum(shares), sum(difficulty), max(best)
FROM worker_minutes
GROUP BY 1, 2, 3;
