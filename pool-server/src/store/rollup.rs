//! Reading the rollups: a worker's (or the pool's) history over a range, and the recent
//! minutes that warm the live windows at start.
//!
//! The share writer keeps the rollups from the same batches it stores (see `postgres.rs` and
//! `sqlite.rs`): per worker (worker 0 is the whole pool), per minute and per hour, per reason
//! (0 is accepted), counting only rows that were new, so they equal the sums of the raw shares
//! they summarise and outlive them (`retention`).

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use protocol::Hashrate;
use serde::Serialize;
use sqlx::Row;

use super::{compact, Backend};
use crate::stats::WarmMinute;

/// The ranges the API offers, each with the bucket width its chart uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl FromStr for Range {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "1h" => Range::Hour,
            "24h" => Range::Day,
            "7d" => Range::Week,
            "30d" => Range::Month,
            "1y" => Range::Year,
            _ => return Err(format!("range must be 1h, 24h, 7d, 30d or 1y (got {s:?})")),
        })
    }
}

impl Range {
    /// Seconds the range covers.
    pub fn span(self) -> i64 {
        match self {
            Range::Hour => 3600,
            Range::Day => 86_400,
            Range::Week => 7 * 86_400,
            Range::Month => 30 * 86_400,
            Range::Year => 365 * 86_400,
        }
    }

    /// Seconds per point.
    pub fn step(self) -> i64 {
        match self {
            Range::Hour => 60,
            Range::Day => 300,
            Range::Week | Range::Month => 3600,
            Range::Year => 86_400,
        }
    }

    /// Whether the hourly rollups serve it (else the per-minute ones).
    fn hourly(self) -> bool {
        self.step() >= 3600
    }
}

/// One point of a history: what the rollups hold for one bucket.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    pub time: DateTime<Utc>,
    /// From the credited difficulty of the accepted shares over the bucket.
    pub hashrate: f64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    /// Sum of the credited difficulty of the accepted shares.
    pub difficulty: f64,
    /// The highest difficulty a share's hash achieved.
    pub best_difficulty: f64,
}

/// (bucket start in unix seconds, reason, shares, difficulty, best)
type Bucket = (i64, i16, i64, f64, f64);

/// The history of `worker` (the pool when `None`) over `range` up to `now`: one point per
/// bucket, zero where nothing was mined. `None` when the worker was never seen.
pub async fn history(
    backend: &Backend,
    worker: Option<&str>,
    range: Range,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<Vec<Point>>> {
    let step = range.step();
    // Up to and including the bucket `now` is in (its hashrate over the part gone by).
    let end = now.timestamp().div_euclid(step) * step + step;
    let start = end - range.span();
    let (table, column) = if range.hourly() {
        ("worker_hours", "hour")
    } else {
        ("worker_minutes", "minute")
    };
    let Some(id) = worker_key(backend, worker).await? else {
        return Ok(None);
    };
    let rows: Vec<Bucket> = match backend {
        Backend::Postgres(p) => {
            sqlx::query(&format!(
                "SELECT (floor(extract(epoch FROM {column}) / $2) * $2)::int8, reason,
                        sum(shares)::int8, sum(difficulty), max(best)
                 FROM {table}
                 WHERE worker_id = $1 AND {column} >= to_timestamp($3) AND {column} < to_timestamp($4)
                 GROUP BY 1, 2"
            ))
            .bind(id as i32)
            .bind(step as f64)
            .bind(start as f64)
            .bind(end as f64)
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
            .collect()
        }
        Backend::Sqlite(p) => {
            sqlx::query(&format!(
                "SELECT {column} / ?2 * ?2, reason, sum(shares), sum(difficulty), max(best)
                 FROM {table}
                 WHERE worker_id = ?1 AND {column} >= ?3 AND {column} < ?4
                 GROUP BY 1, 2"
            ))
            .bind(id)
            .bind(step)
            .bind(start)
            .bind(end)
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| {
                (
                    r.get(0),
                    r.get::<i64, _>(1) as i16,
                    r.get(2),
                    r.get(3),
                    r.get(4),
                )
            })
            .collect()
        }
    };
    Ok(Some(points(start, end, step, now.timestamp(), &rows)))
}

/// The rollups' key of `worker`: 0 for the pool, `None` for a worker never stored.
async fn worker_key(backend: &Backend, worker: Option<&str>) -> anyhow::Result<Option<i64>> {
    let Some(name) = worker else {
        return Ok(Some(0));
    };
    let sql = "SELECT id FROM workers WHERE name = $1";
    Ok(match backend {
        Backend::Postgres(p) => sqlx::query_scalar::<_, i32>(sql)
            .bind(name)
            .fetch_optional(p)
            .await?
            .map(i64::from),
        Backend::Sqlite(p) => {
            sqlx::query_scalar(&sql.replace('$', "?"))
                .bind(name)
                .fetch_optional(p)
                .await?
        }
    })
}

/// Every bucket from `start` to `end`, filled from `rows`; the last one, still running at
/// `now`, is measured over the time gone by.
fn points(start: i64, end: i64, step: i64, now: i64, rows: &[Bucket]) -> Vec<Point> {
    let mut out: BTreeMap<i64, Point> = (0..(end - start) / step)
        .map(|i| start + i * step)
        .filter_map(|t| {
            Some((
                t,
                Point {
                    time: DateTime::from_timestamp(t, 0)?,
                    hashrate: 0.0,
                    accepted: 0,
                    rejected: 0,
                    rejected_by_reason: BTreeMap::new(),
                    difficulty: 0.0,
                    best_difficulty: 0.0,
                },
            ))
        })
        .collect();
    for &(t, reason, shares, difficulty, best) in rows {
        let Some(p) = out.get_mut(&t) else { continue };
        let shares = shares.max(0) as u64;
        match compact::reason_label(reason) {
            None => {
                p.accepted += shares;
                p.difficulty += difficulty;
            }
            Some(label) => {
                p.rejected += shares;
                *p.rejected_by_reason.entry(label).or_default() += shares;
            }
        }
        p.best_difficulty = p.best_difficulty.max(best);
    }
    out.into_iter()
        .map(|(t, mut p)| {
            let width = (now - t).clamp(1, step) as u64;
            p.hashrate =
                Hashrate::from_shares(p.difficulty, std::time::Duration::from_secs(width)).0;
            p
        })
        .collect()
}

/// Accepted work per minute of every worker since `workers_since` and of the pool since
/// `pool_since`, to warm the live windows and the pool's per-minute history at start.
pub async fn warm_minutes(
    backend: &Backend,
    workers_since: DateTime<Utc>,
    pool_since: DateTime<Utc>,
) -> anyhow::Result<Vec<WarmMinute>> {
    let sql = "SELECT w.name, m.minute, m.difficulty FROM worker_minutes m
               LEFT JOIN workers w ON w.id = m.worker_id
               WHERE m.reason = 0 AND m.minute >= CASE WHEN m.worker_id = 0 THEN $2 ELSE $1 END";
    Ok(match backend {
        Backend::Postgres(p) => sqlx::query(sql)
            .bind(workers_since)
            .bind(pool_since)
            .fetch_all(p)
            .await?
            .iter()
            .map(|r| WarmMinute {
                worker: r.get(0),
                minute: r.get(1),
                difficulty: r.get(2),
            })
            .collect(),
        Backend::Sqlite(p) => sqlx::query(&sql.replace('$', "?"))
            .bind(workers_since.timestamp())
            .bind(pool_since.timestamp())
            .fetch_all(p)
            .await?
            .iter()
            .filter_map(|r| {
                Some(WarmMinute {
                    worker: r.get(0),
                    minute: DateTime::from_timestamp(r.get(1), 0)?,
                    difficulty: r.get(2),
                })
            })
            .collect(),
    })
}
