-- A share row no longer carries a unique index entry: the pool writes each batch exactly once
-- by the batch's id (recorded in `share_batches` in the same transaction as its shares), so
-- the primary key on (created_at, id), the largest part of a share's bytes after the row
-- itself, goes. What the pool looks shares up by stays, smaller: time through a BRIN index
-- (rows append in time order, so block ranges summarise them in a few bytes per megabyte) and
-- the worker through a B-tree on the worker id alone, which PostgreSQL deduplicates (one
-- posting list of row pointers per worker and page instead of one entry per share).

CREATE TABLE share_batches (
    id        UUID PRIMARY KEY,
    stored_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    shares    INTEGER NOT NULL
);
CREATE INDEX share_batches_stored ON share_batches USING brin (stored_at);

ALTER TABLE shares DROP CONSTRAINT shares_pkey;
DROP INDEX shares_worker_created;
CREATE INDEX shares_worker ON shares (worker_id);
CREATE INDEX shares_created ON shares USING brin (created_at);
