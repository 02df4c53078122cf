//! Endpoints that change state. Each needs `Authorization: Bearer <--api-token>`; with no token
//! configured they are off. The token is compared in constant time and never logged.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::api::error;
use super::ApiState;

/// Proof that a request carries the admin token: a handler that takes it runs only for the
/// operator (the check runs before the body is read).
pub struct Admin;

impl FromRequestParts<Arc<ApiState>> for Admin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Admin, Response> {
        deny(state, &parts.headers).map_or(Ok(Admin), Err)
    }
}

/// Whether `given` is the configured admin token (never when none is configured).
pub(super) fn token_is_admin(s: &ApiState, given: &str) -> bool {
    s.api_token
        .as_deref()
        .filter(|t| !t.is_empty())
        .is_some_and(|expected| tokens_match(given, expected))
}

/// `None` when the request carries the right token, else the response refusing it.
fn deny(s: &ApiState, headers: &HeaderMap) -> Option<Response> {
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
    (!tokens_match(given, expected))
        .then(|| error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token"))
}

/// Whether the presented token is the configured one, in time that depends on neither: both
/// are hashed to 32 bytes first, so not even the length shows (a length check before a
/// constant-time compare tells an attacker the token's length by timing). An empty presented
/// token never matches.
fn tokens_match(given: &str, expected: &str) -> bool {
    use bitcoin::hashes::{sha256, Hash};
    let a = sha256::Hash::hash(given.as_bytes()).to_byte_array();
    let b = sha256::Hash::hash(expected.as_bytes()).to_byte_array();
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0 && !given.is_empty()
}

#[derive(Deserialize)]
pub struct FeedTx {
    /// The raw transaction, hex.
    pub hex: String,
}

pub async fn feed_transaction(
    State(s): State<Arc<ApiState>>,
    _: Admin,
    Json(body): Json<FeedTx>,
) -> Response {
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

pub async fn list_bans(State(s): State<Arc<ApiState>>, _: Admin) -> Response {
    Json(s.bans.list()).into_response()
}

#[derive(Deserialize)]
pub struct AddBan {
    pub ip: IpAddr,
    pub reason: Option<String>,
}

pub async fn add_ban(
    State(s): State<Arc<ApiState>>,
    _: Admin,
    Json(body): Json<AddBan>,
) -> Response {
    s.bans.ban(
        body.ip,
        body.reason.as_deref().unwrap_or("banned by operator"),
    );
    s.metrics.bans.inc();
    StatusCode::NO_CONTENT.into_response()
}

pub async fn lift_ban(
    State(s): State<Arc<ApiState>>,
    _: Admin,
    Path(ip): Path<String>,
) -> Response {
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

#[cfg(test)]
mod tests {
    use super::tokens_match;

    #[test]
    fn tokens_match_only_themselves_whatever_their_length() {
        assert!(tokens_match("s3cret-token", "s3cret-token"));
        assert!(!tokens_match("s3cret-tokeN", "s3cret-token"));
        assert!(!tokens_match("s3cret", "s3cret-token"), "a prefix");
        assert!(!tokens_match("s3cret-token-and-more", "s3cret-token"));
        assert!(!tokens_match("", ""), "an empty token never matches");
    }
}
