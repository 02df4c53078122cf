//! Accounts and rewards: balances per account, an account's recent credits and payouts, how a
//! block's reward was shared (public reads), and where an account is paid (admin).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::admin::Admin;
use super::api::{db_error, error, paged};
use super::ApiState;
use crate::rewards::{accounts, ledger};

/// Recent credits and payouts shown per account.
const RECENT: i64 = 50;

/// An account name as the pool could have recorded it (a worker name's part before the dot).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && !name.contains('.') && !name.contains(char::is_control)
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// Page size, 1..=1000 (default 1000).
    pub limit: Option<usize>,
    /// The last account of the previous page.
    pub after: Option<String>,
}

/// Accounts' balances by name, a page at a time (`?limit=`, `?after=`; the `Link: rel="next"`
/// header names the next page while there is one), from sums at most a few seconds old.
pub async fn list(State(s): State<Arc<ApiState>>, Query(q): Query<ListQuery>) -> Response {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=1000).contains(&limit) {
        return error(StatusCode::BAD_REQUEST, "limit must be between 1 and 1000");
    }
    let all = match s.balances().await {
        Ok(b) => b,
        Err(e) => return db_error(e),
    };
    let after = q.after.unwrap_or_default();
    let from = all.partition_point(|b| b.account.as_str() <= after.as_str());
    let page = &all[from..(from + limit).min(all.len())];
    let next = page
        .last()
        .filter(|_| from + limit < all.len())
        .map(|b| b.account.as_str());
    paged(Json(page).into_response(), "/api/accounts", limit, next)
}

pub async fn one(State(s): State<Arc<ApiState>>, Path(name): Path<String>) -> Response {
    if !valid_name(&name) {
        return error(StatusCode::BAD_REQUEST, "not an account name");
    }
    // The lists first, the balance last: a payout or credit is written in the same
    // transaction as the balance change it makes, so the balance read after the lists is
    // never older than what they show (a payout listed pending is never also counted due).
    let read = async {
        let payouts = accounts::recent_payouts(&s.store, &name, RECENT).await?;
        let credits = accounts::recent_credits(&s.store, &name, RECENT).await?;
        let balance = accounts::balances(&s.store, s.network, Some(&name))
            .await?
            .pop();
        anyhow::Ok((balance, credits, payouts))
    };
    match read.await {
        Ok((None, credits, payouts))
            if credits.is_empty()
                && payouts.is_empty()
                && s.stats.account(&name, Utc::now()).is_none() =>
        {
            error(StatusCode::NOT_FOUND, format!("no account {name:?}"))
        }
        Ok((balance, credits, payouts)) => {
            let balance = balance.unwrap_or_else(|| accounts::Balance {
                account: name.clone(),
                address: accounts::address_in_name(&name, s.network),
                ..Default::default()
            });
            Json(json!({
                "balance": balance,
                "credits": credits,
                "payouts": payouts,
                "live": live(&s, &name),
            }))
            .into_response()
        }
        Err(e) => db_error(e),
    }
}

/// The account's hashrate now, summed over its workers as shares arrived, with each
/// window's interval (as a worker's): `null` for an account with nothing in memory.
fn live(s: &ApiState, name: &str) -> serde_json::Value {
    let now = Utc::now();
    let Some(a) = s.stats.account(name, now) else {
        return serde_json::Value::Null;
    };
    json!({
        "hashrate": a.hashrate,
        "online": a.online,
        "accepted": a.accepted,
        "uncertainty": super::api::uncertainty(&a.counted, a.first, 0.0, now),
    })
}

pub async fn block_rewards(State(s): State<Arc<ApiState>>, Path(hash): Path<String>) -> Response {
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return error(StatusCode::BAD_REQUEST, "a block hash is 64 hex characters");
    }
    match ledger::block_reward(&s.store, &hash.to_ascii_lowercase()).await {
        Ok(Some(r)) => Json(r).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("block {hash} has not been credited (not found by this pool, not on the best chain, or not yet)"),
        ),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
pub struct SetAddress {
    /// An address of the pool's network; `null` clears it.
    pub address: Option<String>,
}

pub async fn set_address(
    State(s): State<Arc<ApiState>>,
    _: Admin,
    Path(name): Path<String>,
    Json(body): Json<SetAddress>,
) -> Response {
    if !valid_name(&name) {
        return error(StatusCode::BAD_REQUEST, "not an account name");
    }
    if accounts::address_in_name(&name, s.network).is_some() {
        return error(
            StatusCode::CONFLICT,
            "this account is an address: it is always paid there",
        );
    }
    let address = match body.address.as_deref() {
        Some(a) => match accounts::parse_address(a, s.network) {
            Ok(a) => Some(a),
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        },
        None => None,
    };
    match accounts::set_address(&s.store, &name, address.as_deref(), Utc::now()).await {
        Ok(()) => {
            tracing::info!(account = %name, address = ?address, "account payout address set");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => db_error(e),
    }
}
