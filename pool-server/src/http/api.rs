//! Public read endpoints: pool, workers (with history), blocks, shares. JSON only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::ApiState;
use crate::stats::{HistoryPoint, WorkerSnapshot};
use crate::store::rollup::{self, Range};
use crate::store::WorkerRow;

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

pub(super) fn db_error(e: anyhow::Error) -> Response {
    tracing::warn!(error = %e, "API read failed");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the share database is unavailable",
    )
}

#[derive(Deserialize)]
pub struct RangeQuery {
    /// `1h`, `24h` (default), `7d`, `30d` or `1y`.
    pub range: Option<String>,
}

impl RangeQuery {
    fn range(&self) -> Result<Range, String> {
        self.range.as_deref().unwrap_or("24h").parse()
    }
}

/// The history from the rollups, or, while the database does not answer, the last day the
/// pool holds in memory.
async fn history_of(
    s: &ApiState,
    worker: Option<&str>,
    range: Range,
    memory: Vec<HistoryPoint>,
) -> Option<serde_json::Value> {
    match rollup::history(&s.store, worker, range, Utc::now()).await {
        Ok(Some(points)) => Some(json!(points)),
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(error = %e, "rollups unavailable; history from memory");
            Some(json!(memory))
        }
    }
}

pub async fn pool(State(s): State<Arc<ApiState>>, Query(q): Query<RangeQuery>) -> Response {
    let range = match q.range() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (snap, memory) = s.stats.pool(Utc::now());
    let history = history_of(&s, None, range, memory).await;
    let job = s.jobs.current();
    let t = &job.template;
    Json(json!({
        "source": s.source,
        "hashrate": snap.hashrate,
        "accepted": snap.accepted,
        "rejected": snap.rejected,
        "workers": snap.workers,
        "sessions": s.metrics.sessions.get(),
        "height": t.height,
        "prev_hash": t.prev_hash.to_string(),
        "bits": t.bits.to_string(),
        "network_difficulty": t.target.difficulty().as_f64(),
        "template_age_secs": t.created.elapsed().as_secs_f64(),
        "template_stale": s.metrics.chain.template_stale.get() == 1,
        "transactions": t.transactions.len(),
        "blocks_found": match &s.chain {
            // Found and still on the best chain (a reorganisation can take blocks away).
            Some(chain) => chain.blocks_found(),
            None => s.metrics.chain.blocks.with_label_values(&["accepted"]).get(),
        },
        "last_block_time": s.metrics.chain.last_block_time.get(),
        "uptime_secs": s.started.elapsed().as_secs(),
        "store": {
            "backend": s.store.kind(),
            "up": s.metrics.store.store_up.get() == 1,
            "spool_depth": s.metrics.store.spool_depth.get(),
        },
        "history": history,
    }))
    .into_response()
}

/// A worker as listed: live numbers from memory, all-time totals from the database.
#[derive(Serialize)]
pub struct WorkerView {
    #[serde(flatten)]
    pub live: WorkerSnapshot,
    pub total: Option<WorkerRow>,
}

#[derive(Deserialize)]
pub struct WorkersQuery {
    /// Page size, 1..=1000 (default 100).
    pub limit: Option<i64>,
    /// The last name of the previous page.
    pub after: Option<String>,
}

/// Workers by name, a page at a time: `?limit=` and `?after=` (the `Link: rel="next"` header
/// names the next page while there is one).
pub async fn workers(State(s): State<Arc<ApiState>>, Query(q): Query<WorkersQuery>) -> Response {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return bad_limit();
    }
    let after = q.after.unwrap_or_default();
    let totals = match s.store.workers(&after, limit + 1).await {
        Ok(t) => t,
        Err(e) => return db_error(e),
    };
    // Names from the database's page and from the directory (workers not stored yet); the
    // live numbers of the page's names only, fresh from memory.
    let directory = match s.directory().await {
        Ok(d) => d,
        Err(e) => return db_error(e),
    };
    let mut page: BTreeMap<String, Option<WorkerRow>> = totals
        .into_iter()
        .map(|t| (t.name.clone(), Some(t)))
        .collect();
    for e in directory.entries[directory.after(&after)..]
        .iter()
        .take(limit as usize + 1)
    {
        page.entry(e.name.clone()).or_default();
    }
    let more = page.len() > limit as usize;
    let now = Utc::now();
    let out: Vec<WorkerView> = page
        .into_iter()
        .take(limit as usize)
        .map(|(name, total)| WorkerView {
            // Workers known only from the database (not seen since start) read zero.
            live: s
                .stats
                .snapshot(&name, now)
                .unwrap_or_else(|| idle_worker(name)),
            total,
        })
        .collect();
    let next = out.last().filter(|_| more).map(|w| w.live.name.as_str());
    paged(Json(&out).into_response(), "/api/workers", limit, next)
}

/// A page with, when there is a next one, a `Link: rel="next"` header naming it: `path` with
/// the same `limit` and `after` the page's last name.
pub(super) fn paged(
    mut response: Response,
    path: &str,
    limit: impl std::fmt::Display,
    last: Option<&str>,
) -> Response {
    if let Some(last) = last {
        let next = format!(
            "<{path}?limit={limit}&after={}>; rel=\"next\"",
            url_escape(last)
        );
        if let Ok(v) = axum::http::HeaderValue::from_str(&next) {
            response.headers_mut().insert(axum::http::header::LINK, v);
        }
    }
    response
}

/// Percent-encode everything but unreserved characters (for a name in a query string).
fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Serialize)]
struct WorkerDetail {
    #[serde(flatten)]
    live: WorkerSnapshot,
    /// Each window's 95 % interval and what it was counted from; how long the worker is known.
    uncertainty: serde_json::Value,
    history: serde_json::Value,
}

/// A worker's live numbers and its history over `?range=` (default 24h) from the rollups:
/// also for a worker not seen since the pool started.
pub async fn worker(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let range = match q.range() {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (live, memory) = match s.stats.worker(&name, Utc::now()) {
        Some((live, memory)) => (Some(live), memory),
        None => (None, Vec::new()),
    };
    let now = Utc::now();
    let uncertainty = s.stats.counted(&name, now).map(|(counted, first)| {
        let difficulty = live.as_ref().map_or(0.0, |l| l.difficulty);
        uncertainty(&counted, first, difficulty, now)
    });
    match (live, history_of(&s, Some(&name), range, memory).await) {
        (None, None) => error(StatusCode::NOT_FOUND, format!("no worker named {name:?}")),
        (live, history) => Json(WorkerDetail {
            live: live.unwrap_or_else(|| idle_worker(name)),
            uncertainty: uncertainty.unwrap_or(Value::Null),
            history: history.unwrap_or_else(|| json!([])),
        })
        .into_response(),
    }
}

/// How sure each window's hashrate is: a Poisson count of shares says it, so a worker with
/// few shares in a window gets a wide interval, not a number that only looks exact. The
/// interval is on the count of shares, scaled by their mean difficulty; a window warmed from
/// the rollups at start has work but no counted shares, and is counted at `difficulty` (the
/// worker's current one) instead, or left out when there is none.
pub(super) fn uncertainty(
    counted: &[crate::stats::Counted; 3],
    first: Option<chrono::DateTime<Utc>>,
    difficulty: f64,
    now: chrono::DateTime<Utc>,
) -> Value {
    const CONFIDENCE: f64 = 0.95;
    let mut windows = serde_json::Map::new();
    for ((name, _), c) in crate::stats::WINDOWS.iter().zip(counted) {
        let (shares, mean) = if c.shares > 0 {
            (c.shares, c.work / c.shares as f64)
        } else if c.work > 0.0 && difficulty > 0.0 {
            ((c.work / difficulty).round() as u64, difficulty)
        } else if c.work > 0.0 {
            continue;
        } else {
            (0, difficulty)
        };
        let (lo, hi) = crate::notify::poisson::mean_interval(shares, CONFIDENCE);
        let rate = |n: f64| {
            protocol::Hashrate::from_shares(n * mean, Duration::from_secs(c.seconds.max(1))).0
        };
        windows.insert(
            (*name).to_owned(),
            json!({
                "shares": shares,
                "seconds": c.seconds,
                "low": rate(lo),
                "high": rate(hi),
            }),
        );
    }
    json!({
        "confidence": CONFIDENCE,
        "windows": windows,
        "seconds_known": first.map(|f| (now - f).num_seconds().max(0)),
    })
}

/// The live numbers of a worker with no session and no share since the pool started.
fn idle_worker(name: String) -> WorkerSnapshot {
    WorkerSnapshot {
        name,
        hashrate: crate::stats::WINDOWS
            .iter()
            .map(|(n, _)| (*n, 0.0))
            .collect(),
        accepted: 0,
        rejected: 0,
        rejected_by_reason: Default::default(),
        difficulty: 0.0,
        sessions: 0,
        last_share: None,
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    pub limit: Option<i64>,
    pub worker: Option<String>,
}

fn limit(q: &ListQuery) -> Option<i64> {
    Some(q.limit.unwrap_or(100)).filter(|l| (1..=1000).contains(l))
}

fn bad_limit() -> Response {
    error(StatusCode::BAD_REQUEST, "limit must be between 1 and 1000")
}

pub async fn blocks(State(s): State<Arc<ApiState>>, Query(q): Query<ListQuery>) -> Response {
    let Some(limit) = limit(&q) else {
        return bad_limit();
    };
    match s.store.blocks(limit).await {
        Ok(b) => Json(b).into_response(),
        Err(e) => db_error(e),
    }
}

pub async fn shares(State(s): State<Arc<ApiState>>, Query(q): Query<ListQuery>) -> Response {
    let Some(limit) = limit(&q) else {
        return bad_limit();
    };
    match s.store.shares(q.worker.as_deref(), limit).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => db_error(e),
    }
}

/// The P2P node's peers (an empty list when it has none or P2P is off).
pub async fn peers(State(s): State<Arc<ApiState>>) -> Response {
    let Some(node) = &s.p2p else {
        return Json(json!({ "enabled": false, "peers": [] })).into_response();
    };
    let (orphans, _) = s.chain.as_ref().map(|c| c.orphans()).unwrap_or_default();
    Json(json!({
        "enabled": true,
        "listen": node.listening.map(|a| a.to_string()),
        "peers": node.peers(),
        "banned": node.bans().list().len(),
        "orphans": orphans,
    }))
    .into_response()
}
