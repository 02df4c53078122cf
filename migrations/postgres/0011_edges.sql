-- The edges of one pool: several pool-servers on this database behind one name.

-- Each edge's row, written every second while it runs (its liveness is its advisory lock,
-- held on a connection of its own: a killed edge loses it at once).
CREATE TABLE edges (
    id                SMALLINT PRIMARY KEY,
    stratum           TEXT NOT NULL,
    http              TEXT NOT NULL,
    version           TEXT NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL,
    seen_at           TIMESTAMPTZ NOT NULL,
    sessions          INTEGER NOT NULL DEFAULT 0,
    shares_per_second DOUBLE PRECISION NOT NULL DEFAULT 0,
    draining          BOOLEAN NOT NULL DEFAULT FALSE
);

-- Sessions any edge may resume: held by an edge while it runs, parked (holder NULL) until
-- parked_until once its connection dropped. home is the edge whose extranonce1 space the
-- value comes from; it never hands the value out while a row names it.
CREATE TABLE edge_sessions (
    token        TEXT PRIMARY KEY,
    extranonce1  BYTEA NOT NULL,
    home         SMALLINT NOT NULL,
    holder       SMALLINT,
    parked_by    SMALLINT,
    parked_until TIMESTAMPTZ,
    difficulty   DOUBLE PRECISION NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX edge_sessions_home ON edge_sessions (home);

-- Bans every edge applies: written by the edge (or operator) that banned, read by the others.
CREATE TABLE edge_bans (
    ip         TEXT PRIMARY KEY,
    until_at   TIMESTAMPTZ NOT NULL,
    since      TIMESTAMPTZ NOT NULL,
    reason     TEXT NOT NULL,
    edge       SMALLINT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX edge_bans_changed ON edge_bans (changed_at);
