//! The shares a block's reward is shared over, read from the store: accepted shares walked
//! back in time from the block's own share, across restarts and across every pool-server that
//! writes to the same database.
//!
//! The walk reads one time slice at a time (sized to hold a few tens of thousands of shares),
//! orders each slice by (time, id) and feeds a [`WindowFill`] until the window is full (PPLNS)
//! or the walk reaches the previous block (PROP). Memory holds one slice and one sum per
//! account, whatever the window's size.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rolling_window::RollingWindow;
use super::scheme::{Weights, WindowFill, Work};
use crate::store::{Backend, Dialect};
use crate::with_pool;

/// Where a walk starts: the share that found the block (it and older shares count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub at_micros: i64,
    pub id: Uuid,
}

/// How far back a walk goes.
#[derive(Debug, Clone, Copy)]
pub enum Reach {
    /// Until this much work is counted (PPLNS).
    Work(Work),
    /// Back to the shares after this one (PROP: since the previous block's share).
    Since(Anchor),
}

/// What a walk found.
#[derive(Debug)]
pub struct Walked {
    pub fill: WindowFill,
    /// The oldest share counted (unix microseconds).
    pub oldest_micros: Option<i64>,
}

const FIRST_SLICE_MICROS: i64 = 10_000_000;
const MIN_SLICE_MICROS: i64 = 100_000;
const MAX_SLICE_MICROS: i64 = 86_400_000_000;
/// Rows a slice aims at: grow the next slice below the low mark, shrink it above the high.
const LOW_ROWS: usize = 5_000;
const HIGH_ROWS: usize = 50_000;

/// A time in unix microseconds, as PostgreSQL stores it (exactly: microseconds both).
fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The block's share: its time and id, found near `found_micros` (when the block path took
/// the block). `None` when it is not in the store.
pub async fn find_anchor(
    backend: &Backend,
    block_hash: &str,
    found_micros: i64,
) -> anyhow::Result<Option<Anchor>> {
    let hash = hex::decode(block_hash)?;
    // The share is stored before the block is taken, within the block path's queue time.
    let (lo, hi) = (found_micros - 3_600_000_000, found_micros + 60_000_000);
    let row: Option<(i64, Uuid)> = match backend {
        Backend::Postgres(p) => {
            let row: Option<(DateTime<Utc>, Uuid)> = sqlx::query_as(
                "SELECT created_at, id FROM shares
                 WHERE created_at >= $2 AND created_at <= $3 AND reason = 0 AND block_hash = $1
                 ORDER BY created_at, id LIMIT 1",
            )
            .bind(&hash)
            .bind(at(lo))
            .bind(at(hi))
            .fetch_optional(p)
            .await?;
            row.map(|(t, id)| (t.timestamp_micros(), id))
        }
        Backend::Sqlite(p) => {
            sqlx::query_as(
                "SELECT created_at, id FROM shares
                 WHERE created_at >= ?2 AND created_at <= ?3 AND reason = 0 AND block_hash = ?1
                 ORDER BY created_at, id LIMIT 1",
            )
            .bind(&hash)
            .bind(lo)
            .bind(hi)
            .fetch_optional(p)
            .await?
        }
    };
    Ok(row.map(|(at_micros, id)| Anchor { at_micros, id }))
}

/// Accepted shares in `[lo, hi)` (unix microseconds): time, id, account, credited difficulty.
async fn slice(
    backend: &Backend,
    lo: i64,
    hi: i64,
) -> anyhow::Result<Vec<(i64, Uuid, String, f64)>> {
    Ok(match backend {
        Backend::Postgres(p) => {
            let rows: Vec<(DateTime<Utc>, Uuid, String, f64)> = sqlx::query_as(
                "SELECT s.created_at, s.id, w.account, s.assigned_difficulty
                 FROM shares s JOIN workers w ON w.id = s.worker_id
                 WHERE s.created_at >= $1 AND s.created_at < $2 AND s.reason = 0",
            )
            .bind(at(lo))
            .bind(at(hi))
            .fetch_all(p)
            .await?;
            rows.into_iter()
                .map(|(t, id, a, d)| (t.timestamp_micros(), id, a, d))
                .collect()
        }
        Backend::Sqlite(p) => {
            sqlx::query_as(
                "SELECT s.created_at, s.id, w.account, s.assigned_difficulty
                 FROM shares s JOIN workers w ON w.id = s.worker_id
                 WHERE s.created_at >= ?1 AND s.created_at < ?2 AND s.reason = 0",
            )
            .bind(lo)
            .bind(hi)
            .fetch_all(p)
            .await?
        }
    })
}

/// Walk back from `anchor` until `reach`, looking no further back than `floor_micros` (the
/// oldest shares the store can still hold).
pub async fn walk(
    backend: &Backend,
    anchor: Anchor,
    reach: Reach,
    floor_micros: i64,
) -> anyhow::Result<Walked> {
    walk_into(backend, anchor, reach, floor_micros, None).await
}

/// [`walk`], also keeping what each slice counted as a bucket of `buckets` (the coinbase
/// planner's rolling window, filled back in time).
pub async fn walk_into(
    backend: &Backend,
    anchor: Anchor,
    reach: Reach,
    floor_micros: i64,
    mut buckets: Option<&mut RollingWindow>,
) -> anyhow::Result<Walked> {
    let mut fill = match reach {
        Reach::Work(w) => WindowFill::new(w),
        Reach::Since(_) => WindowFill::unbounded(),
    };
    let (stop, after) = match reach {
        Reach::Since(prev) => (prev.at_micros.max(floor_micros), Some(prev)),
        Reach::Work(_) => (floor_micros, None),
    };
    let end = (anchor.at_micros, anchor.id);
    let mut oldest = None;
    // PostgreSQL keeps microseconds; the first slice ends just after the anchor's.
    let mut hi = anchor.at_micros + 1;
    let mut width = FIRST_SLICE_MICROS;
    while hi > stop && !fill.is_full() {
        let lo = (hi - width).max(stop);
        let mut rows = slice(backend, lo, hi).await?;
        let n = rows.len();
        rows.retain(|(at, id, _, _)| {
            (*at, *id) <= end && after.is_none_or(|a| (*at, *id) > (a.at_micros, a.id))
        });
        rows.sort_by_key(|r| std::cmp::Reverse((r.0, r.1)));
        let mut counted = Weights::new();
        let mut shares = 0u64;
        for (at, _, account, difficulty) in rows {
            if fill.is_full() {
                break;
            }
            let part = fill.take(&account, Work::of_difficulty(difficulty));
            if buckets.is_some() && part.0 > 0 {
                let e = counted.entry(account).or_default();
                e.0 = e.0.saturating_add(part.0);
                shares += 1;
            }
            oldest = Some(at);
        }
        if let Some(b) = buckets.as_deref_mut().filter(|_| shares > 0) {
            b.push_older(lo, hi, counted, shares);
        }
        hi = lo;
        width = if n < LOW_ROWS {
            (width * 2).min(MAX_SLICE_MICROS)
        } else if n > HIGH_ROWS {
            (width / 2).max(MIN_SLICE_MICROS)
        } else {
            width
        };
    }
    Ok(Walked {
        fill,
        oldest_micros: oldest,
    })
}

/// Where PROP's window ends: the share of the newest block of `chain` credited before
/// `before_micros`, or `None` before the first.
pub async fn previous_block_anchor(
    backend: &Backend,
    chain: &str,
    before_micros: i64,
) -> anyhow::Result<Option<Anchor>> {
    let at: Option<i64> = with_pool!(backend, p => sqlx::query_scalar(&p.sql(
        "SELECT max(window_end_us) FROM block_rewards WHERE window_end_us < $1 AND chain = $2",
    ))
    .bind(before_micros)
    .bind(chain)
    .fetch_one(p)
    .await?);
    // Shares at that very microsecond but after the previous block's share are counted by
    // neither block's walk; a microsecond of shares, once per block.
    Ok(at.map(|at_micros| Anchor {
        at_micros,
        id: Uuid::max(),
    }))
}

/// Accepted work per account received in `[lo, hi)` (unix microseconds), summed by the
/// database, and the number of shares: what the coinbase planner adds at each read.
pub async fn work_between(backend: &Backend, lo: i64, hi: i64) -> anyhow::Result<(Weights, u64)> {
    let rows: Vec<(String, f64, i64)> = match backend {
        Backend::Postgres(p) => {
            sqlx::query_as(
                "SELECT w.account, sum(s.assigned_difficulty), count(*)
                 FROM shares s JOIN workers w ON w.id = s.worker_id
                 WHERE s.created_at >= $1 AND s.created_at < $2 AND s.reason = 0
                 GROUP BY w.account",
            )
            .bind(at(lo))
            .bind(at(hi))
            .fetch_all(p)
            .await?
        }
        Backend::Sqlite(p) => {
            sqlx::query_as(
                "SELECT w.account, total(s.assigned_difficulty), count(*)
                 FROM shares s JOIN workers w ON w.id = s.worker_id
                 WHERE s.created_at >= ?1 AND s.created_at < ?2 AND s.reason = 0
                 GROUP BY w.account",
            )
            .bind(lo)
            .bind(hi)
            .fetch_all(p)
            .await?
        }
    };
    let shares = rows.iter().map(|r| r.2 as u64).sum();
    Ok((
        rows.into_iter()
            .map(|(a, d, _)| (a, Work::of_difficulty(d)))
            .filter(|(_, w)| w.0 > 0)
            .collect(),
        shares,
    ))
}
