//! `GET /api/worker-table`: the dashboard's workers table, searched, sorted, grouped by account
//! and paged on the server, so a pool with tens of thousands of workers sends the browser one
//! page of rows, never the whole list.
//!
//! Rows merge the live numbers (memory: hashrate windows, sessions, current difficulty) with
//! the all-time totals (the database's `workers`), so a worker offline since before the last
//! restart is still listed and can be found. They come from the worker directory's snapshot
//! (`directory.rs`): at most a few seconds old, and a page costs its rows, not the pool's size.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::api::error;
use super::directory::{Entry, Sort, Sums, ViewKey};
use super::ApiState;
use crate::stats::WINDOWS;

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

fn rates(r: &[f64; 3]) -> BTreeMap<&'static str, f64> {
    WINDOWS.iter().zip(r).map(|((w, _), v)| (*w, *v)).collect()
}

fn row(e: &Entry, account: &str) -> Row {
    Row {
        name: e.name.clone(),
        account: account.to_owned(),
        hashrate: rates(&e.n.hashrate),
        accepted: e.n.accepted,
        rejected: e.n.rejected,
        difficulty: e.n.difficulty,
        sessions: e.n.sessions,
        last_share: e.n.last_share,
    }
}

fn account(s: &Sums) -> Account {
    Account {
        workers: s.workers,
        online: s.online,
        hashrate: rates(&s.hashrate),
        accepted: s.accepted,
        rejected: s.rejected,
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

    let snapshot = match s.directory().await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "API read failed");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the share database is unavailable",
            );
        }
    };
    let view = snapshot
        .view(ViewKey {
            needle,
            sort,
            descending,
            grouped,
        })
        .await;
    let page = view.order.iter().skip(offset).take(limit);
    let rows: Vec<Row> = page
        .clone()
        .map(|&i| {
            let e = &snapshot.entries[i as usize];
            row(e, &snapshot.accounts[e.account as usize])
        })
        .collect();
    let accounts = page
        .map(|&i| snapshot.entries[i as usize].account)
        .map(|a| {
            let sums = view.sums.get(&a).map(account).unwrap_or_default();
            (snapshot.accounts[a as usize].clone(), sums)
        })
        .collect();
    Json(Table {
        total: view.order.len(),
        offset,
        limit,
        rows,
        accounts,
    })
    .into_response()
}
