//! SQLite, the embedded default: one transaction per batch with `INSERT OR IGNORE`, worker
//! totals summed from the rows that were actually new.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::{BlockRecord, BlockRow, ShareRecord, WorkerRow};

/// The pool API readers share (WAL: readers never block the writer, nor it them).
pub async fn connect(url: &str) -> anyhow::Result<SqlitePool> {
    connect_with(url, 4).await
}

/// The share writer's own connection: however busy the API's readers are, a batch never
/// waits for a connection (and so is never spooled for want of one).
pub async fn connect_writer(url: &str) -> anyhow::Result<SqlitePool> {
    connect_with(url, 1).await
}

async fn connect_with(url: &str, connections: u32) -> anyhow::Result<SqlitePool> {
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5));
    Ok(SqlitePoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(opts)
        .await?)
}

#[derive(Default)]
struct Totals {
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    accepted: i64,
    rejected: i64,
    difficulty: f64,
}

pub async fn write(
    pool: &SqlitePool,
    shares: &[&ShareRecord],
    blocks: &[&BlockRecord],
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let mut totals: HashMap<&str, Totals> = HashMap::new();
    for s in shares {
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO shares (id, worker, session_id, job_id, height, assigned_difficulty,
                 achieved_difficulty, accepted, reason, block_hash, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.id)
        .bind(&s.worker)
        .bind(s.session_id)
        .bind(&s.job_id)
        .bind(s.height)
        .bind(s.assigned_difficulty)
        .bind(s.achieved_difficulty)
        .bind(s.accepted)
        .bind(&s.reason)
        .bind(&s.block_hash)
        .bind(s.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            continue;
        }
        let t = totals.entry(s.worker.as_str()).or_default();
        t.first = Some(t.first.map_or(s.created_at, |f| f.min(s.created_at)));
        t.last = Some(t.last.map_or(s.created_at, |l| l.max(s.created_at)));
        if s.accepted {
            t.accepted += 1;
            t.difficulty += s.assigned_difficulty;
        } else {
            t.rejected += 1;
        }
    }
    for (name, t) in totals {
        sqlx::query(
            "INSERT INTO workers (name, account, first_seen, last_seen, accepted_shares, rejected_shares, accepted_difficulty)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (name) DO UPDATE SET
                 first_seen = min(first_seen, excluded.first_seen),
                 last_seen = max(last_seen, excluded.last_seen),
                 accepted_shares = accepted_shares + excluded.accepted_shares,
                 rejected_shares = rejected_shares + excluded.rejected_shares,
                 accepted_difficulty = accepted_difficulty + excluded.accepted_difficulty",
        )
        .bind(name)
        .bind(name.split('.').next().unwrap_or(name))
        .bind(t.first)
        .bind(t.last)
        .bind(t.accepted)
        .bind(t.rejected)
        .bind(t.difficulty)
        .execute(&mut *tx)
        .await?;
    }
    for b in blocks {
        sqlx::query(
            "INSERT INTO blocks (hash, height, prev_hash, chain, worker, network_difficulty, status, detail, raw, found_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (hash) DO UPDATE SET status = excluded.status, detail = excluded.detail",
        )
        .bind(&b.hash)
        .bind(b.height)
        .bind(&b.prev_hash)
        .bind(&b.chain)
        .bind(&b.worker)
        .bind(b.network_difficulty)
        .bind(&b.status)
        .bind(&b.detail)
        .bind(&b.raw)
        .bind(b.found_at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn load_chain(
    pool: &SqlitePool,
    chain: &str,
    limit: i64,
) -> anyhow::Result<Vec<(i64, Vec<u8>)>> {
    let rows = sqlx::query(
        "SELECT height, raw FROM blocks WHERE chain = ? AND status = 'accepted' ORDER BY height DESC LIMIT ?",
    )
    .bind(chain)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub async fn blocks(pool: &SqlitePool, limit: i64) -> anyhow::Result<Vec<BlockRow>> {
    Ok(sqlx::query_as::<_, BlockRow>(
        "SELECT hash, height, prev_hash, chain, worker, network_difficulty, status, detail, found_at
         FROM blocks ORDER BY found_at DESC, height DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn shares(
    pool: &SqlitePool,
    worker: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<ShareRecord>> {
    Ok(sqlx::query_as::<_, ShareRecord>(
        "SELECT id, worker, session_id, job_id, height, assigned_difficulty, achieved_difficulty,
                accepted, reason, block_hash, created_at
         FROM shares WHERE (?1 IS NULL OR worker = ?1) ORDER BY created_at DESC LIMIT ?2",
    )
    .bind(worker)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn workers(pool: &SqlitePool, after: &str, limit: i64) -> anyhow::Result<Vec<WorkerRow>> {
    Ok(sqlx::query_as::<_, WorkerRow>(
        "SELECT name, account, first_seen, last_seen, accepted_shares, rejected_shares, accepted_difficulty
         FROM workers WHERE name > ?1 ORDER BY name LIMIT ?2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn share_counts(pool: &SqlitePool) -> anyhow::Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT coalesce(sum(accepted), 0), coalesce(sum(1 - accepted), 0) FROM shares",
    )
    .fetch_one(pool)
    .await?;
    Ok((r.get(0), r.get(1)))
}
