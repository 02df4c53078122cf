//! PostgreSQL: batches go in as arrays through `UNNEST`, one statement for the shares and the
//! worker totals they change, so a batch costs one round trip whatever its size.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::{BlockRecord, BlockRow, ShareRecord, WorkerRow};

fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(3))
}

pub async fn connect(url: &str) -> anyhow::Result<PgPool> {
    let opts = PgConnectOptions::from_str(url)?;
    Ok(pool_options().connect_with(opts).await?)
}

/// A pool that connects when first used.
pub fn connect_lazy(url: &str) -> anyhow::Result<PgPool> {
    let opts = PgConnectOptions::from_str(url)?;
    Ok(pool_options().connect_lazy_with(opts))
}

pub async fn write(
    pool: &PgPool,
    shares: &[&ShareRecord],
    blocks: &[&BlockRecord],
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    if !shares.is_empty() {
        let ids: Vec<Uuid> = shares.iter().map(|s| s.id).collect();
        let workers: Vec<&str> = shares.iter().map(|s| s.worker.as_str()).collect();
        let sessions: Vec<i64> = shares.iter().map(|s| s.session_id).collect();
        let jobs: Vec<&str> = shares.iter().map(|s| s.job_id.as_str()).collect();
        let heights: Vec<i64> = shares.iter().map(|s| s.height).collect();
        let assigned: Vec<f64> = shares.iter().map(|s| s.assigned_difficulty).collect();
        let achieved: Vec<f64> = shares.iter().map(|s| s.achieved_difficulty).collect();
        let accepted: Vec<bool> = shares.iter().map(|s| s.accepted).collect();
        let reasons: Vec<Option<&str>> = shares.iter().map(|s| s.reason.as_deref()).collect();
        let block_hashes: Vec<Option<&str>> =
            shares.iter().map(|s| s.block_hash.as_deref()).collect();
        let created: Vec<DateTime<Utc>> = shares.iter().map(|s| s.created_at).collect();
        sqlx::query(
            r#"
            WITH ins AS (
                INSERT INTO shares (id, worker, session_id, job_id, height, assigned_difficulty,
                                    achieved_difficulty, accepted, reason, block_hash, created_at)
                SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::text[], $5::int8[],
                                     $6::float8[], $7::float8[], $8::bool[], $9::text[], $10::text[],
                                     $11::timestamptz[])
                ON CONFLICT (id) DO NOTHING
                RETURNING worker, accepted, assigned_difficulty, created_at
            )
            INSERT INTO workers AS w (name, account, first_seen, last_seen, accepted_shares,
                                      rejected_shares, accepted_difficulty)
            SELECT worker, split_part(worker, '.', 1), min(created_at), max(created_at),
                   count(*) FILTER (WHERE accepted), count(*) FILTER (WHERE NOT accepted),
                   coalesce(sum(assigned_difficulty) FILTER (WHERE accepted), 0)
            FROM ins GROUP BY worker
            ON CONFLICT (name) DO UPDATE SET
                first_seen = LEAST(w.first_seen, EXCLUDED.first_seen),
                last_seen = GREATEST(w.last_seen, EXCLUDED.last_seen),
                accepted_shares = w.accepted_shares + EXCLUDED.accepted_shares,
                rejected_shares = w.rejected_shares + EXCLUDED.rejected_shares,
                accepted_difficulty = w.accepted_difficulty + EXCLUDED.accepted_difficulty
            "#,
        )
        .bind(&ids)
        .bind(&workers)
        .bind(&sessions)
        .bind(&jobs)
        .bind(&heights)
        .bind(&assigned)
        .bind(&achieved)
        .bind(&accepted)
        .bind(&reasons)
        .bind(&block_hashes)
        .bind(&created)
        .execute(&mut *tx)
        .await?;
    }
    for b in blocks {
        sqlx::query(
            r#"INSERT INTO blocks (hash, height, prev_hash, chain, worker, network_difficulty,
                                   status, detail, raw, found_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (hash) DO UPDATE SET status = EXCLUDED.status, detail = EXCLUDED.detail"#,
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
    pool: &PgPool,
    chain: &str,
    limit: i64,
) -> anyhow::Result<Vec<(i64, Vec<u8>)>> {
    let rows = sqlx::query(
        "SELECT height, raw FROM blocks WHERE chain = $1 AND status = 'accepted' ORDER BY height DESC LIMIT $2",
    )
    .bind(chain)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub async fn blocks(pool: &PgPool, limit: i64) -> anyhow::Result<Vec<BlockRow>> {
    Ok(sqlx::query_as::<_, BlockRow>(
        "SELECT hash, height, prev_hash, chain, worker, network_difficulty, status, detail, found_at
         FROM blocks ORDER BY found_at DESC, height DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn shares(
    pool: &PgPool,
    worker: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<ShareRecord>> {
    Ok(sqlx::query_as::<_, ShareRecord>(
        "SELECT id, worker, session_id, job_id, height, assigned_difficulty, achieved_difficulty,
                accepted, reason, block_hash, created_at
         FROM shares WHERE ($1::text IS NULL OR worker = $1) ORDER BY created_at DESC LIMIT $2",
    )
    .bind(worker)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn workers(pool: &PgPool, after: &str, limit: i64) -> anyhow::Result<Vec<WorkerRow>> {
    Ok(sqlx::query_as::<_, WorkerRow>(
        "SELECT name, account, first_seen, last_seen, accepted_shares, rejected_shares, accepted_difficulty
         FROM workers WHERE name > $1 ORDER BY name LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn share_counts(pool: &PgPool) -> anyhow::Result<(i64, i64)> {
    let r = sqlx::query(
        "SELECT count(*) FILTER (WHERE accepted), count(*) FILTER (WHERE NOT accepted) FROM shares",
    )
    .fetch_one(pool)
    .await?;
    Ok((r.get(0), r.get(1)))
}
