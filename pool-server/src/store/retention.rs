//! Retention: what the share database keeps, and for how long.
//!
//! Raw shares are kept `--share-retention` (default 7 days), per-minute rollups
//! `--minute-rollup-retention` (8 days), per-hour rollups `--rollup-retention` (400 days).
//! In PostgreSQL, `shares` is partitioned by UTC day: partitions are created two days ahead
//! and a day goes by dropping its partition (no `DELETE`, no bloat). SQLite deletes old rows
//! in small batches, yielding between them so the share writer is never shut out.
//!
//! The ids of stored batches (what makes a replayed batch add nothing) are kept as long as
//! the shares or the minute rollups they counted into, whichever is longer: a spool replayed
//! later than that could not have been stored before anyway.
//!
//! [`maintain`] takes the clock as an argument, so tests drive it through days and years.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::Row;
use tokio_util::sync::CancellationToken;

use super::Backend;

/// Rows deleted per statement (SQLite shares; rollups in both).
const DELETE_BATCH: i64 = 20_000;
/// Days of partitions kept ready ahead of today.
const DAYS_AHEAD: i64 = 2;
/// How often maintenance runs.
const EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub shares: Duration,
    pub minutes: Duration,
    pub hours: Duration,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub partitions_created: Vec<String>,
    pub partitions_dropped: Vec<String>,
    pub shares_deleted: u64,
    pub rollups_deleted: u64,
    pub batch_ids_deleted: u64,
    /// Shares were kept past the retention for a block not yet credited.
    pub held_back: bool,
}

impl Report {
    /// `n` rows of `table` (a rollup or the batch ids) went.
    fn count_deleted(&mut self, table: &str, n: u64) {
        if table == "share_batches" {
            self.batch_ids_deleted += n;
        } else {
            self.rollups_deleted += n;
        }
    }
}

/// When the oldest block found by the pool in the last day that has no credits yet was found
/// (an older one is not waiting for the ledger: no ledger of its chain runs).
async fn uncredited_since(
    backend: &Backend,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    use super::Dialect;
    let found: Vec<DateTime<Utc>> = crate::with_pool!(backend, p => sqlx::query_scalar(&p.sql(
        "SELECT b.found_at FROM blocks b
         WHERE b.worker IS NOT NULL AND b.status IN ('accepted', 'duplicate')
           AND NOT EXISTS (SELECT 1 FROM block_rewards r WHERE r.block_hash = b.hash)",
    ))
    .fetch_all(p)
    .await?);
    let day = now - chrono::Duration::days(1);
    Ok(found.into_iter().filter(|t| *t > day).min())
}

fn before(now: DateTime<Utc>, keep: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX)
}

fn partition_name(day: NaiveDate) -> String {
    format!("shares_p{}", day.format("%Y%m%d"))
}

/// The day a partition named by [`partition_name`] holds.
fn partition_day(name: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(name.strip_prefix("shares_p")?, "%Y%m%d").ok()
}

/// One maintenance pass as of `now`.
pub async fn maintain(
    backend: &Backend,
    now: DateTime<Utc>,
    policy: &Policy,
) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut shares_before = before(now, policy.shares);
    // Rewards need the shares of blocks not yet credited: nothing is dropped that their
    // windows could reach (the retention and a day, back from the oldest such block).
    if let Some(oldest) = uncredited_since(backend, now).await? {
        // As far back as the ledger's walk looks: the retention and a day before the block.
        let hold = before(oldest, policy.shares) - chrono::Duration::days(1);
        if hold < shares_before {
            tracing::info!(block_found = %oldest, "share retention held back for a block not yet credited");
            shares_before = hold;
        }
        report.held_back = true;
    }
    let batches_before = before(now, policy.shares.max(policy.minutes));
    match backend {
        Backend::Postgres(p) => {
            let today = now.date_naive();
            for ahead in 0..=DAYS_AHEAD {
                let day = today + chrono::Duration::days(ahead);
                let name = partition_name(day);
                let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
                    .bind(&name)
                    .fetch_one(p)
                    .await?;
                if exists.is_none() {
                    sqlx::query("SELECT pool_share_partition($1)")
                        .bind(day)
                        .execute(p)
                        .await?;
                    report.partitions_created.push(name);
                }
            }
            let parts: Vec<String> = sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'shares'::regclass ORDER BY 1",
            )
            .fetch_all(p)
            .await?;
            for name in parts {
                // A day goes once all of it is older than the retention.
                let Some(day) = partition_day(&name) else {
                    continue;
                };
                let end = (day + chrono::Duration::days(1))
                    .and_hms_opt(0, 0, 0)
                    .map(|t| t.and_utc());
                if end.is_some_and(|end| end <= shares_before) {
                    sqlx::query(&format!("DROP TABLE IF EXISTS \"{name}\""))
                        .execute(p)
                        .await?;
                    tracing::info!(partition = %name, "dropped a day of shares past the retention");
                    report.partitions_dropped.push(name);
                }
            }
            for (table, column, cutoff) in [
                ("worker_minutes", "minute", before(now, policy.minutes)),
                ("worker_hours", "hour", before(now, policy.hours)),
                ("share_batches", "stored_at", batches_before),
            ] {
                loop {
                    let n = sqlx::query(&format!(
                        "DELETE FROM {table} WHERE ctid IN
                             (SELECT ctid FROM {table} WHERE {column} < $1 LIMIT $2)"
                    ))
                    .bind(cutoff)
                    .bind(DELETE_BATCH)
                    .execute(p)
                    .await?
                    .rows_affected();
                    report.count_deleted(table, n);
                    if n < DELETE_BATCH as u64 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
        Backend::Sqlite(p) => {
            // Shares are stored in time order, so the old ones lead the table: delete from
            // its start (by rowid, no index on time) until the first row young enough.
            loop {
                let n = sqlx::query(
                    "DELETE FROM shares WHERE rowid IN (
                         SELECT rowid FROM shares
                         WHERE created_at < ?1 AND rowid < coalesce(
                             (SELECT rowid FROM shares WHERE created_at >= ?1 ORDER BY rowid LIMIT 1),
                             9223372036854775807)
                         ORDER BY rowid LIMIT ?2)",
                )
                .bind(shares_before.timestamp_micros())
                .bind(DELETE_BATCH)
                .execute(p)
                .await?
                .rows_affected();
                report.shares_deleted += n;
                if n == 0 {
                    break;
                }
                // Let the share writer in between batches.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            for (table, column, cutoff) in [
                (
                    "worker_minutes",
                    "minute",
                    before(now, policy.minutes).timestamp(),
                ),
                (
                    "worker_hours",
                    "hour",
                    before(now, policy.hours).timestamp(),
                ),
                ("share_batches", "stored_at", batches_before.timestamp()),
            ] {
                loop {
                    // About DELETE_BATCH rows: those before the cutoff, up to the time of
                    // the DELETE_BATCH-th oldest row (rows sharing that time go together).
                    let n = sqlx::query(&format!(
                        "DELETE FROM {table} WHERE {column} < ?1 AND {column} <= coalesce(
                             (SELECT {column} FROM {table} ORDER BY {column} LIMIT 1 OFFSET ?2),
                             ?1)"
                    ))
                    .bind(cutoff)
                    .bind(DELETE_BATCH)
                    .execute(p)
                    .await?
                    .rows_affected();
                    report.count_deleted(table, n);
                    if n == 0 {
                        break;
                    }
                    // Let the share writer in between batches.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    Ok(report)
}

/// The oldest share time the database still holds, if any (for tests and the API).
pub async fn oldest_share(backend: &Backend) -> anyhow::Result<Option<DateTime<Utc>>> {
    Ok(match backend {
        Backend::Postgres(p) => sqlx::query("SELECT min(created_at) FROM shares")
            .fetch_one(p)
            .await?
            .get(0),
        Backend::Sqlite(p) => {
            let us: Option<i64> = sqlx::query("SELECT min(created_at) FROM shares")
                .fetch_one(p)
                .await?
                .get(0);
            us.map(super::compact::from_micros)
        }
    })
}

/// Maintain at start and every hour until `stop`.
pub async fn run(backend: Backend, policy: Policy, stop: CancellationToken) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match maintain(&backend, Utc::now(), &policy).await {
            Ok(r) => tracing::debug!(?r, "share retention pass"),
            Err(e) => tracing::warn!(error = %e, "share retention pass failed; will retry"),
        }
    }
}
