//! PostgreSQL: batches go in as arrays through `UNNEST`, one statement for the shares and
//! everything they change (worker totals, rollups), so a batch costs a few round trips
//! whatever its size. `shares` is partitioned by day (see the migrations and `retention`),
//! has no unique index (a batch is written once by its id, see [`super::batch`]), and is
//! found by time through a BRIN index and by worker through a deduplicated B-tree.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::{compact, Batch, ShareRecord};

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

/// The integer ids of the workers `shares` name, creating the rows of new ones (in name
/// order, so concurrent pool-servers take row locks in one order and never deadlock).
async fn worker_ids(
    tx: &mut sqlx::PgConnection,
    shares: &[&ShareRecord],
) -> anyhow::Result<HashMap<String, i32>> {
    let seen = compact::worker_spans(shares);
    let names: Vec<&str> = seen.keys().copied().collect();
    let first: Vec<DateTime<Utc>> = seen.values().map(|v| v.0).collect();
    let last: Vec<DateTime<Utc>> = seen.values().map(|v| v.1).collect();
    let rows = sqlx::query(
        r#"INSERT INTO workers AS w (name, account, first_seen, last_seen)
           SELECT n, split_part(n, '.', 1), f, l
           FROM UNNEST($1::text[], $2::timestamptz[], $3::timestamptz[]) AS t(n, f, l)
           ORDER BY n
           ON CONFLICT (name) DO UPDATE SET
               first_seen = LEAST(w.first_seen, EXCLUDED.first_seen),
               last_seen = GREATEST(w.last_seen, EXCLUDED.last_seen)
           RETURNING id, name"#,
    )
    .bind(&names)
    .bind(&first)
    .bind(&last)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.iter().map(|r| (r.get(1), r.get(0))).collect())
}

/// Make sure the day partitions `shares` fall in exist (the pool creates them ahead; this
/// covers a clock jump or a replay of an old spool).
async fn partitions_for(
    tx: &mut sqlx::PgConnection,
    shares: &[&ShareRecord],
) -> anyhow::Result<()> {
    let days: BTreeSet<NaiveDate> = shares.iter().map(|s| s.created_at.date_naive()).collect();
    let days: Vec<NaiveDate> = days.into_iter().collect();
    sqlx::query("SELECT pool_share_partition(d) FROM UNNEST($1::date[]) AS d")
        .bind(&days)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Record the ids of `batches` that carry shares; the ids that were new (a batch whose id was
/// already recorded was stored before, and adds nothing now).
pub(super) async fn new_batches(
    tx: &mut sqlx::PgConnection,
    batches: &[Batch],
) -> anyhow::Result<HashSet<Uuid>> {
    let (ids, counts): (Vec<Uuid>, Vec<i32>) = batches
        .iter()
        .map(|b| (b.id, b.share_count()))
        .filter(|(_, n)| *n > 0)
        .unzip();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let fresh: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO share_batches (id, shares) SELECT * FROM UNNEST($1::uuid[], $2::int4[])
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&ids)
    .bind(&counts)
    .fetch_all(&mut *tx)
    .await?;
    Ok(fresh.into_iter().collect())
}

/// Store `shares` (those of batches never stored before) and, from exactly those rows (what
/// the insert returns), the worker totals and the per-minute and per-hour rollups of the
/// worker and of the pool (worker 0): one statement over arrays, whatever the batch's size.
pub(super) async fn insert_shares(
    tx: &mut sqlx::PgConnection,
    shares: &[&ShareRecord],
) -> anyhow::Result<()> {
    partitions_for(&mut *tx, shares).await?;
    let ids = worker_ids(&mut *tx, shares).await?;
    let created: Vec<DateTime<Utc>> = shares.iter().map(|s| s.created_at).collect();
    let uuids: Vec<Uuid> = shares.iter().map(|s| s.id).collect();
    let sessions: Vec<i64> = shares.iter().map(|s| s.session_id).collect();
    let (jobs, job_texts): (Vec<Option<i64>>, Vec<Option<&str>>) =
        shares.iter().map(|s| compact::split_job(&s.job_id)).unzip();
    let assigned: Vec<f64> = shares.iter().map(|s| s.assigned_difficulty).collect();
    let achieved: Vec<f64> = shares.iter().map(|s| s.achieved_difficulty).collect();
    let workers: Vec<i32> = shares.iter().map(|s| ids[s.worker.as_str()]).collect();
    let heights: Vec<i32> = shares
        .iter()
        .map(|s| i32::try_from(s.height).unwrap_or(i32::MAX))
        .collect();
    let reasons: Vec<i16> = shares.iter().map(|s| compact::reason_code(s)).collect();
    let hashes: Vec<Option<Vec<u8>>> = shares
        .iter()
        .map(|s| compact::hash_bytes(s.block_hash.as_deref()))
        .collect();
    sqlx::query(
        r#"
        WITH ins AS (
            INSERT INTO shares (created_at, id, session_id, job, assigned_difficulty,
                                achieved_difficulty, worker_id, height, reason, job_text,
                                block_hash)
            SELECT * FROM UNNEST($1::timestamptz[], $2::uuid[], $3::int8[], $4::int8[],
                                 $5::float8[], $6::float8[], $7::int4[], $8::int4[],
                                 $9::int2[], $10::text[], $11::bytea[])
            RETURNING created_at, worker_id, reason, assigned_difficulty, achieved_difficulty
        ),
        per_minute AS (
            SELECT date_trunc('minute', created_at, 'UTC') AS minute, w AS worker_id, reason,
                   count(*) AS shares, sum(assigned_difficulty) AS difficulty,
                   max(achieved_difficulty) AS best
            FROM ins, LATERAL (VALUES (worker_id), (0)) AS both_(w)
            GROUP BY 1, 2, 3
        ),
        minutes AS (
            INSERT INTO worker_minutes AS m (minute, worker_id, reason, shares, difficulty, best)
            SELECT * FROM per_minute ORDER BY worker_id, minute, reason
            ON CONFLICT (worker_id, minute, reason) DO UPDATE SET
                shares = m.shares + EXCLUDED.shares,
                difficulty = m.difficulty + EXCLUDED.difficulty,
                best = GREATEST(m.best, EXCLUDED.best)
        ),
        hours AS (
            INSERT INTO worker_hours AS h (hour, worker_id, reason, shares, difficulty, best)
            SELECT date_trunc('hour', minute, 'UTC'), worker_id, reason, sum(shares),
                   sum(difficulty), max(best)
            FROM per_minute GROUP BY 1, 2, 3 ORDER BY 2, 1, 3
            ON CONFLICT (worker_id, hour, reason) DO UPDATE SET
                shares = h.shares + EXCLUDED.shares,
                difficulty = h.difficulty + EXCLUDED.difficulty,
                best = GREATEST(h.best, EXCLUDED.best)
        )
        UPDATE workers AS w SET
            accepted_shares = w.accepted_shares + t.accepted,
            rejected_shares = w.rejected_shares + t.rejected,
            accepted_difficulty = w.accepted_difficulty + t.difficulty
        FROM (SELECT worker_id,
                     count(*) FILTER (WHERE reason = 0) AS accepted,
                     count(*) FILTER (WHERE reason <> 0) AS rejected,
                     coalesce(sum(assigned_difficulty) FILTER (WHERE reason = 0), 0) AS difficulty
              FROM ins GROUP BY worker_id) AS t
        WHERE w.id = t.worker_id
        "#,
    )
    .bind(&created)
    .bind(&uuids)
    .bind(&sessions)
    .bind(&jobs)
    .bind(&assigned)
    .bind(&achieved)
    .bind(&workers)
    .bind(&heights)
    .bind(&reasons)
    .bind(&job_texts)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// How far back [`shares`] looks, widening until it has enough: time is indexed by BRIN
/// (block ranges, no order), so the newest rows are found by a recent range, then sorted.
const LOOK_BACK: [&str; 4] = ["1 minute", "1 hour", "1 day", "100 years"];

/// The newest `limit` shares, of the worker whose id is `worker_id`, or of all.
pub(super) async fn shares(
    pool: &PgPool,
    worker_id: Option<i64>,
    limit: i64,
) -> anyhow::Result<Vec<ShareRecord>> {
    let worker_id = worker_id.map(i32::try_from).transpose()?;
    // Two statements, not one with `$1 IS NULL OR ...`: a cached generic plan of that could
    // not use the worker index.
    let which = if worker_id.is_some() {
        "s.worker_id = $1"
    } else {
        "$1::int4 IS NULL"
    };
    let sql = format!(
        "SELECT s.id, w.name, s.session_id, s.job, s.job_text, s.height::int8,
                s.assigned_difficulty, s.achieved_difficulty, s.reason, s.block_hash,
                (extract(epoch FROM s.created_at) * 1000000)::int8
         FROM shares s JOIN workers w ON w.id = s.worker_id
         WHERE {which} AND s.created_at >= now() - $3::interval
         ORDER BY s.created_at DESC LIMIT $2"
    );
    let mut rows: Vec<compact::StoredShare> = Vec::new();
    for back in LOOK_BACK {
        rows = sqlx::query_as(&sql)
            .bind(worker_id)
            .bind(limit)
            .bind(back)
            .fetch_all(pool)
            .await?;
        if rows.len() as i64 >= limit {
            break;
        }
    }
    Ok(rows.into_iter().map(compact::record).collect())
}
