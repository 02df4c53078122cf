//! Which edges the pool has, how loaded they are, and which are alive.
//!
//! Why an advisory lock for liveness: a heartbeat row says when an edge last wrote, but a
//! killed edge looks alive until its row goes stale. Each edge holds a PostgreSQL advisory
//! lock named by its id on a connection of its own for as long as it runs; the database lets
//! it go the moment that connection closes (a `kill -9` closes it), so another edge can take a
//! dead edge's miners over within the second. The same lock keeps two processes from running
//! with one `--edge-id`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::mining::EdgeId;

/// The advisory lock class of edges ("EDGE"); the lock's second key is the edge id.
pub const LOCK_CLASS: i32 = 0x4544_4745;

/// SQL true when the edge whose id is in column `col` holds its lock (is running). Locks are
/// per database: another pool's edges on the same server have locks of their own.
pub fn alive(col: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND l.classid::bigint = {LOCK_CLASS} AND l.objid::bigint = {col} \
         AND l.objsubid = 2 AND l.granted)"
    )
}

/// Take this edge's lock on a connection of its own (kept for the process's life).
pub async fn hold_lock(url: &str, id: EdgeId) -> anyhow::Result<PgConnection> {
    let mut conn = PgConnection::connect(url).await?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, $2)")
        .bind(LOCK_CLASS)
        .bind(i32::from(id.prefix()))
        .fetch_one(&mut conn)
        .await?;
    anyhow::ensure!(
        got,
        "edge {id} is already running on this database: give each pool-server its own --edge-id"
    );
    Ok(conn)
}

/// Where miners and operators reach an edge.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// host:port of its Stratum listener, as miners reach it (the drain sends them there).
    pub stratum: String,
    pub http: String,
}

/// An edge's load, written at every beat.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    pub sessions: i64,
    pub shares_per_second: f64,
    pub draining: bool,
}

/// Write this edge's row.
pub async fn beat(
    pool: &PgPool,
    id: EdgeId,
    at: &Addresses,
    started: DateTime<Utc>,
    load: Load,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO edges (id, stratum, http, version, started_at, seen_at, sessions, \
         shares_per_second, draining) VALUES ($1, $2, $3, $4, $5, now(), $6, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET stratum = EXCLUDED.stratum, http = EXCLUDED.http, \
         version = EXCLUDED.version, started_at = EXCLUDED.started_at, seen_at = now(), \
         sessions = EXCLUDED.sessions, shares_per_second = EXCLUDED.shares_per_second, \
         draining = EXCLUDED.draining",
    )
    .bind(i16::from(id.prefix()))
    .bind(&at.stratum)
    .bind(&at.http)
    .bind(env!("CARGO_PKG_VERSION"))
    .bind(started)
    .bind(load.sessions as i32)
    .bind(load.shares_per_second)
    .bind(load.draining)
    .execute(pool)
    .await
    .map(|_| ())
}

/// One edge as `/api/edges` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EdgeView {
    pub id: i16,
    pub stratum: String,
    pub http: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub seen_at: DateTime<Utc>,
    pub sessions: i32,
    pub shares_per_second: f64,
    pub draining: bool,
    /// It holds its lock: the process runs and reaches the database.
    pub alive: bool,
    /// Alive, seen within the last 5 s, and not draining: miners may be sent there.
    pub healthy: bool,
}

/// Every edge the database has heard of, by id.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<EdgeView>> {
    let sql = format!(
        "SELECT id, stratum, http, version, started_at, seen_at, sessions, shares_per_second, \
         draining, {alive} AS alive, seen_at > now() - interval '5 seconds' AS fresh \
         FROM edges e ORDER BY id",
        alive = alive("e.id")
    );
    let rows = sqlx::query(&sql).fetch_all(pool).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (alive, fresh, draining): (bool, bool, bool) =
                (r.get("alive"), r.get("fresh"), r.get("draining"));
            EdgeView {
                id: r.get("id"),
                stratum: r.get("stratum"),
                http: r.get("http"),
                version: r.get("version"),
                started_at: r.get("started_at"),
                seen_at: r.get("seen_at"),
                sessions: r.get("sessions"),
                shares_per_second: r.get("shares_per_second"),
                draining,
                alive,
                healthy: alive && fresh && !draining,
            }
        })
        .collect())
}

/// Where to send the miners of a draining edge: the healthy edge (other than `me`) with the
/// fewest sessions.
pub fn drain_target(edges: &[EdgeView], me: EdgeId) -> Option<&EdgeView> {
    edges
        .iter()
        .filter(|e| e.healthy && e.id != i16::from(me.prefix()))
        .min_by_key(|e| e.sessions)
}
