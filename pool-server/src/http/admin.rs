//! Endpoints that change state. Each needs `Authorization: Bearer <--api-token>`; with no token
//! configured they are off. The token is compared in constant time and never logged.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::api::error;
use super::ApiState;

/// `None` when the request carries the right token, else the response refusing it.
pub(super) fn deny(s: &ApiState, headers: &HeaderMap) -> Option<Response> {
    let Some(expected) = s.api_token.as_deref().filter(|t| !t.is_empty()) else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "admin endpoints are off: start the pool with --api-token to enable them",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // An empty presented token never matches, whatever is configured.
    let eq = !given.is_empty()
        && given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    (!eq).then(|| error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token"))
}

#[derive(Deserialize)]
pub struct FeedTx {
    /// The raw transaction, hex.
    pub hex: String,
}

pub async fn feed_transaction(
    State(s): State<Arc<ApiState>>,
    headers: HeaderMap,
    Json(body): Json<FeedTx>,
) -> Response {
    if let Some(r) = deny(&s, &headers) {
        return r;
    }
    let Some(chain) = &s.chain else {
        return error(
            StatusCode::CONFLICT,
            "transactions can only be fed to the embedded chain; feed the node instead",
        );
    };
    let raw = match hex::decode(body.hex.trim()) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("hex: {e}")),
    };
    let tx: bitcoin::Transaction = match bitcoin::consensus::deserialize(&raw) {
        Ok(t) => t,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("transaction does not decode: {e}"),
            )
        }
    };
    match chain.add_transaction(tx) {
        Ok(txid) => (
            StatusCode::CREATED,
            Json(json!({ "txid": txid.to_string() })),
        )
            .into_response(),
        Err(e) => error(StatusCode::CONFLICT, e.to_string()),
    }
}

pub async fn list_bans(State(s): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = deny(&s, &headers) {
        return r;
    }
    Json(s.bans.list()).into_response()
}

#[derive(Deserialize)]
pub struct AddBan {
    pub ip: IpAddr,
    pub reason: Option<String>,
}

pub async fn add_ban(
    State(s): State<Arc<ApiState>>,
    headers: HeaderMap,
    Json(body): Json<AddBan>,
) -> Response {
    if let Some(r) = deny(&s, &headers) {
        return r;
    }
    s.bans.ban(
        body.ip,
        body.reason.as_deref().unwrap_or("banned by operator"),
    );
    s.metrics.bans.inc();
    StatusCode::NO_CONTENT.into_response()
}

pub async fn lift_ban(
    State(s): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(ip): Path<String>,
) -> Response {
    if let Some(r) = deny(&s, &headers) {
        return r;
    }
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{ip:?} is not an IP address"),
        );
    };
    if s.bans.unban(ip) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        error(StatusCode::NOT_FOUND, format!("{ip} is not banned"))
    }
}
