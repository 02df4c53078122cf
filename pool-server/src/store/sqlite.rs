//! SQLite, the embedded default: one transaction per batch, each step one statement over the
//! batch as a JSON array (`json_each`), so the writer stores tens of thousands of rows a
//! second; worker totals and rollups are summed from the rows that were actually new.
//! `shares` is a rowid table (rows append in the order they are stored) with one index, by
//! worker; a batch is written once by its id (see [`super::batch`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::{compact, Batch, ShareRecord};

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
        .busy_timeout(Duration::from_secs(5))
        .pragma("cache_size", "-65536");
    Ok(SqlitePoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(opts)
        .await?)
}

/// Rows per multi-row `INSERT` (11 parameters each, well under SQLite's 32,766): full chunks
/// share one prepared statement.
const ROWS_PER_INSERT: usize = 256;

/// What the rows a batch really added change: (worker id, minute, reason) ->
/// (shares, difficulty, best).
type Rollup = BTreeMap<(i64, i64, i64), (i64, f64, f64)>;

/// Record the ids of `batches` that carry shares; the ids that were new.
pub(super) async fn new_batches(
    tx: &mut sqlx::SqliteConnection,
    batches: &[Batch],
) -> anyhow::Result<HashSet<Uuid>> {
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<serde_json::Value> = batches
        .iter()
        .filter(|b| b.share_count() > 0)
        .map(|b| json!([b.id.simple().to_string(), b.share_count()]))
        .collect();
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let fresh: Vec<String> = sqlx::query_scalar(
        "INSERT OR IGNORE INTO share_batches (id, stored_at, shares)
         SELECT value->>0, ?2, value->>1 FROM json_each(?1) RETURNING id",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    Ok(fresh
        .iter()
        .map(|id| Uuid::parse_str(id))
        .collect::<Result<_, _>>()?)
}

/// Store `shares` (those of batches never stored before), then, from exactly those rows, the
/// worker totals and the per-minute and per-hour rollups of the worker and of the pool
/// (worker 0). Each step is one statement over a JSON array (or a few multi-row inserts), so
/// a batch costs a handful of statements whatever its size.
pub(super) async fn insert_shares(
    tx: &mut sqlx::SqliteConnection,
    shares: &[&ShareRecord],
) -> anyhow::Result<()> {
    let ids = worker_ids(&mut *tx, shares).await?;
    for chunk in shares.chunks(ROWS_PER_INSERT) {
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO shares (created_at, id, worker_id, reason, height,
                 session_id, job, job_text, assigned_difficulty, achieved_difficulty,
                 block_hash) ",
        );
        q.push_values(chunk, |mut row, s| {
            let (job, job_text) = compact::split_job(&s.job_id);
            row.push_bind(compact::micros(s.created_at))
                .push_bind(s.id)
                .push_bind(ids[s.worker.as_str()])
                .push_bind(compact::reason_code(s))
                .push_bind(s.height)
                .push_bind(s.session_id)
                .push_bind(job)
                .push_bind(job_text.map(str::to_owned))
                .push_bind(s.assigned_difficulty)
                .push_bind(s.achieved_difficulty)
                .push_bind(compact::hash_bytes(s.block_hash.as_deref()));
        });
        q.build().execute(&mut *tx).await?;
    }
    // Every share of a fresh batch was inserted (the table has no key that could refuse
    // one), so the rollups sum them as they are.
    let mut minutes = Rollup::new();
    for s in shares {
        let minute = compact::minute_of(s.created_at);
        let reason = i64::from(compact::reason_code(s));
        for w in [ids[s.worker.as_str()], 0] {
            let e = minutes.entry((w, minute, reason)).or_insert((0, 0.0, 0.0));
            e.0 += 1;
            e.1 += s.assigned_difficulty;
            e.2 = e.2.max(s.achieved_difficulty);
        }
    }
    let mut hours = Rollup::new();
    for ((w, minute, reason), (n, d, best)) in &minutes {
        let e = hours
            .entry((*w, compact::hour_of(*minute), *reason))
            .or_insert((0, 0.0, 0.0));
        e.0 += n;
        e.1 += d;
        e.2 = e.2.max(*best);
    }
    add_rollup(&mut *tx, "worker_minutes", "minute", &minutes).await?;
    add_rollup(&mut *tx, "worker_hours", "hour", &hours).await?;
    let totals: Vec<serde_json::Value> = minutes
        .iter()
        .filter(|((w, _, _), _)| *w != 0)
        .map(|((w, _, reason), (n, d, _))| {
            let accepted = *reason == i64::from(compact::ACCEPTED);
            json!([
                w,
                if accepted { *n } else { 0 },
                if accepted { 0 } else { *n },
                if accepted { *d } else { 0.0 }
            ])
        })
        .collect();
    sqlx::query(
        "UPDATE workers SET accepted_shares = accepted_shares + t.a,
             rejected_shares = rejected_shares + t.r, accepted_difficulty = accepted_difficulty + t.d
         FROM (SELECT value->>0 AS id, sum(value->>1) AS a, sum(value->>2) AS r,
                      total(value->>3) AS d
               FROM json_each(?1) GROUP BY 1) AS t
         WHERE workers.id = t.id",
    )
    .bind(serde_json::Value::Array(totals).to_string())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The integer ids of the workers `shares` name, creating the rows of new ones.
async fn worker_ids(
    tx: &mut sqlx::SqliteConnection,
    shares: &[&ShareRecord],
) -> anyhow::Result<HashMap<String, i64>> {
    let seen = compact::worker_spans(shares);
    let time = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    let rows: Vec<serde_json::Value> = seen
        .iter()
        .map(|(name, (first, last))| {
            let account = name.split('.').next().unwrap_or(name);
            json!([name, account, time(first), time(last)])
        })
        .collect();
    let rows = sqlx::query(
        "INSERT INTO workers (name, account, first_seen, last_seen)
         SELECT value->>0, value->>1, value->>2, value->>3 FROM json_each(?1) WHERE true
         ON CONFLICT (name) DO UPDATE SET
             first_seen = min(first_seen, excluded.first_seen),
             last_seen = max(last_seen, excluded.last_seen)
         RETURNING id, name",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.iter().map(|r| (r.get(1), r.get(0))).collect())
}

async fn add_rollup(
    tx: &mut sqlx::SqliteConnection,
    table: &str,
    period: &str,
    rows: &Rollup,
) -> anyhow::Result<()> {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|((w, at, reason), (n, d, best))| json!([w, at, reason, n, d, best]))
        .collect();
    sqlx::query(&format!(
        "INSERT INTO {table} AS r (worker_id, {period}, reason, shares, difficulty, best)
         SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5
         FROM json_each(?1) WHERE true
         ON CONFLICT (worker_id, {period}, reason) DO UPDATE SET
             shares = r.shares + excluded.shares,
             difficulty = r.difficulty + excluded.difficulty,
             best = max(r.best, excluded.best)"
    ))
    .bind(serde_json::Value::Array(rows).to_string())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The newest `limit` shares, of the worker whose id is `worker_id`, or of all.
pub(super) async fn shares(
    pool: &SqlitePool,
    worker_id: Option<i64>,
    limit: i64,
) -> anyhow::Result<Vec<ShareRecord>> {
    const COLUMNS: &str =
        "SELECT s.id, w.name, s.session_id, s.job, s.job_text, s.height, s.assigned_difficulty,
                s.achieved_difficulty, s.reason, s.block_hash, s.created_at
         FROM shares s JOIN workers w ON w.id = s.worker_id";
    // One worker through the worker index, newest first.
    let rows: Vec<compact::StoredShare> = match worker_id {
        Some(id) => {
            sqlx::query_as(&format!(
                "{COLUMNS} WHERE s.worker_id = ?1 ORDER BY s.rowid DESC LIMIT ?2"
            ))
            .bind(id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query_as(&format!("{COLUMNS} ORDER BY s.rowid DESC LIMIT ?1"))
                .bind(limit)
                .fetch_all(pool)
                .await?
        }
    };
    // The newest stored, newest first (a replayed spool stores older shares late).
    let mut out: Vec<ShareRecord> = rows.into_iter().map(compact::record).collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    Ok(out)
}
