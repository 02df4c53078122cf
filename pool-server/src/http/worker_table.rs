//! `GET /api/worker-table`: the dashboard's workers table, searched, sorted, grouped by account
//! and paged on the server, so a pool with tens of thousands of workers sends the browser one
//! page of rows, never the whole list.
//!
//! Rows merge the live numbers (memory: hashrate windows, sessions, current difficulty) with
//! the all-time totals (the database's `workers`), so a worker offline since before the last
//! restart is still listed and can be found.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::api::error;
use super::ApiState;
use crate::stats::WorkerSnapshot;
use crate::store::WorkerRow;

/// Most workers one search reads from the database.
const MAX_MATCHES: i64 = 200_000;
/// Longest search string.
const MAX_QUERY: usize = 64;

#[derive(Deserialize)]
pub struct TableQuery {
    /// Substring of the worker name, case-insensitive.
    pub q: Option<String>,
    /// Column to sort by (see [`Sort`]); default `name`.
    pub sort: Option<String>,
    /// `asc` or `desc`; default `asc` for names, `desc` for numbers.
    pub order: Option<String>,
    /// Rows to skip (default 0) and rows per page (1..=500, default 50).
    pub offset: Option<usize>,
    pub limit: Option<usize>,
    /// `account`: rows grouped by account (accounts in the chosen order of their totals).
    pub group: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sort {
    Name,
    Hashrate1m,
    Hashrate5m,
    Hashrate1h,
    Accepted,
    Rejected,
    Difficulty,
    Sessions,
    LastShare,
}

impl Sort {
    fn parse(s: &str) -> Option<Sort> {
        Some(match s {
            "name" => Sort::Name,
            "hashrate_1m" => Sort::Hashrate1m,
            "hashrate_5m" => Sort::Hashrate5m,
            "hashrate_1h" => Sort::Hashrate1h,
            "accepted" => Sort::Accepted,
            "rejected" => Sort::Rejected,
            "difficulty" => Sort::Difficulty,
            "sessions" => Sort::Sessions,
            "last_share" => Sort::LastShare,
            _ => return None,
        })
    }
}

/// One row of the table.
#[derive(Serialize)]
pub struct Row {
    pub name: String,
    pub account: String,
    pub hashrate: BTreeMap<&'static str, f64>,
    /// Accepted and rejected shares, all time (database totals, or the live count while the
    /// database has not caught up with a new worker).
    pub accepted: u64,
    pub rejected: u64,
    pub difficulty: f64,
    pub sessions: u32,
    /// The last share, or when the database last saw the worker.
    pub last_share: Option<DateTime<Utc>>,
}

/// An account's sums over every worker of it that matched.
#[derive(Serialize, Default)]
pub struct Account {
    pub workers: u64,
    pub online: u64,
    pub hashrate: BTreeMap<&'static str, f64>,
    pub accepted: u64,
    pub rejected: u64,
}

#[derive(Serialize)]
pub struct Table {
    /// Workers matching the search (before paging).
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub rows: Vec<Row>,
    /// The accounts on this page, with their sums over all their matching workers.
    pub accounts: BTreeMap<String, Account>,
}

fn account_of(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

fn merge(name: String, live: Option<WorkerSnapshot>, total: Option<WorkerRow>) -> Row {
    let account = account_of(&name).to_owned();
    let (acc_db, rej_db, seen) = total.as_ref().map_or((0, 0, None), |t| {
        (
            t.accepted_shares.max(0) as u64,
            t.rejected_shares.max(0) as u64,
            Some(t.last_seen),
        )
    });
    match live {
        Some(l) => Row {
            account,
            hashrate: l.hashrate,
            accepted: acc_db.max(l.accepted),
            rejected: rej_db.max(l.rejected),
            difficulty: l.difficulty,
            sessions: l.sessions,
            last_share: l.last_share.max(seen),
            name,
        },
        None => Row {
            account,
            hashrate: crate::stats::WINDOWS
                .iter()
                .map(|(n, _)| (*n, 0.0))
                .collect(),
            accepted: acc_db,
            rejected: rej_db,
            difficulty: 0.0,
            sessions: 0,
            last_share: seen,
            name,
        },
    }
}

/// Compare two rows by `sort` (ascending), names breaking ties so pages are stable.
fn compare(sort: Sort, a: &Row, b: &Row) -> Ordering {
    let rate = |r: &Row, w: &str| r.hashrate.get(w).copied().unwrap_or(0.0);
    let by = match sort {
        Sort::Name => Ordering::Equal,
        Sort::Hashrate1m => rate(a, "1m").total_cmp(&rate(b, "1m")),
        Sort::Hashrate5m => rate(a, "5m").total_cmp(&rate(b, "5m")),
        Sort::Hashrate1h => rate(a, "1h").total_cmp(&rate(b, "1h")),
        Sort::Accepted => a.accepted.cmp(&b.accepted),
        Sort::Rejected => a.rejected.cmp(&b.rejected),
        Sort::Difficulty => a.difficulty.total_cmp(&b.difficulty),
        Sort::Sessions => a.sessions.cmp(&b.sessions),
        Sort::LastShare => a.last_share.cmp(&b.last_share),
    };
    by.then_with(|| a.name.cmp(&b.name))
}

/// The value an account is ordered by when rows are grouped.
fn account_key(sort: Sort, a: &Account) -> f64 {
    let rate = |w: &str| a.hashrate.get(w).copied().unwrap_or(0.0);
    match sort {
        Sort::Name | Sort::Difficulty | Sort::LastShare => 0.0,
        Sort::Hashrate1m => rate("1m"),
        Sort::Hashrate5m => rate("5m"),
        Sort::Hashrate1h => rate("1h"),
        Sort::Accepted => a.accepted as f64,
        Sort::Rejected => a.rejected as f64,
        Sort::Sessions => a.online as f64,
    }
}

pub async fn table(State(s): State<Arc<ApiState>>, Query(q): Query<TableQuery>) -> Response {
    let sort = match q.sort.as_deref().map(Sort::parse) {
        None => Sort::Name,
        Some(Some(s)) => s,
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "sort must be one of name, hashrate_1m, hashrate_5m, hashrate_1h, accepted, \
                 rejected, difficulty, sessions, last_share",
            )
        }
    };
    let descending = match q.order.as_deref() {
        None => sort != Sort::Name,
        Some("asc") => false,
        Some("desc") => true,
        Some(_) => return error(StatusCode::BAD_REQUEST, "order must be asc or desc"),
    };
    let grouped = match q.group.as_deref() {
        None | Some("") | Some("none") => false,
        Some("account") => true,
        Some(_) => return error(StatusCode::BAD_REQUEST, "group must be account or none"),
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return error(StatusCode::BAD_REQUEST, "limit must be between 1 and 500");
    }
    let offset = q.offset.unwrap_or(0);
    let needle = q.q.unwrap_or_default().trim().to_lowercase();
    if needle.len() > MAX_QUERY {
        return error(
            StatusCode::BAD_REQUEST,
            format!("q must be at most {MAX_QUERY} bytes"),
        );
    }

    let totals = match s.store.workers_matching(&needle, MAX_MATCHES).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "API read failed");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the share database is unavailable",
            );
        }
    };
    let mut merged: BTreeMap<String, (Option<WorkerSnapshot>, Option<WorkerRow>)> = totals
        .into_iter()
        .map(|t| (t.name.clone(), (None, Some(t))))
        .collect();
    for l in s.stats.workers(Utc::now()) {
        if l.name.to_lowercase().contains(&needle) {
            let name = l.name.clone();
            merged.entry(name).or_default().0 = Some(l);
        }
    }
    let mut rows: Vec<Row> = merged
        .into_iter()
        .map(|(name, (live, total))| merge(name, live, total))
        .collect();

    let mut accounts: BTreeMap<String, Account> = BTreeMap::new();
    for r in &rows {
        let a = accounts.entry(r.account.clone()).or_default();
        a.workers += 1;
        a.online += u64::from(r.sessions > 0);
        a.accepted += r.accepted;
        a.rejected += r.rejected;
        for (w, v) in &r.hashrate {
            *a.hashrate.entry(w).or_default() += v;
        }
    }
    let directed = |o: Ordering| if descending { o.reverse() } else { o };
    if grouped {
        rows.sort_by(|a, b| {
            let (ka, kb) = (&accounts[&a.account], &accounts[&b.account]);
            directed(account_key(sort, ka).total_cmp(&account_key(sort, kb)))
                .then_with(|| a.account.cmp(&b.account))
                .then_with(|| directed(compare(sort, a, b)))
        });
    } else {
        rows.sort_by(|a, b| directed(compare(sort, a, b)));
    }
    let total = rows.len();
    let page: Vec<Row> = rows.into_iter().skip(offset).take(limit).collect();
    let on_page: std::collections::BTreeSet<&str> =
        page.iter().map(|r| r.account.as_str()).collect();
    accounts.retain(|a, _| on_page.contains(a.as_str()));
    Json(Table {
        total,
        offset,
        limit,
        rows: page,
        accounts,
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, rate: f64, accepted: u64) -> Row {
        merge(
            name.into(),
            Some(WorkerSnapshot {
                name: name.into(),
                hashrate: [("1m", rate), ("5m", rate), ("1h", rate)].into(),
                accepted,
                rejected: 0,
                rejected_by_reason: Default::default(),
                difficulty: 1.0,
                sessions: 1,
                last_share: None,
            }),
            None,
        )
    }

    #[test]
    fn ties_break_by_name_so_pages_never_overlap() {
        let mut rows = [row("b.1", 5.0, 1), row("a.1", 5.0, 1), row("c.1", 9.0, 1)];
        rows.sort_by(|a, b| compare(Sort::Hashrate5m, a, b).reverse());
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["c.1", "b.1", "a.1"]);
    }

    #[test]
    fn the_account_is_the_name_before_the_first_dot() {
        assert_eq!(account_of("alice.rig1.gpu"), "alice");
        assert_eq!(account_of("bob"), "bob");
    }

    #[test]
    fn totals_from_the_database_win_over_a_fresh_live_count() {
        let r = merge(
            "a.1".into(),
            Some(WorkerSnapshot {
                name: "a.1".into(),
                hashrate: Default::default(),
                accepted: 3,
                rejected: 1,
                rejected_by_reason: Default::default(),
                difficulty: 2.0,
                sessions: 1,
                last_share: None,
            }),
            Some(WorkerRow {
                name: "a.1".into(),
                account: "a".into(),
                first_seen: Utc::now(),
                last_seen: Utc::now(),
                accepted_shares: 100,
                rejected_shares: 0,
                accepted_difficulty: 100.0,
            }),
        );
        assert_eq!((r.accepted, r.rejected), (100, 1));
        assert!(r.last_share.is_some());
    }
}
