//! The account a request may manage: the first name in its path (`/api/accounts/{name}/...`),
//! with the account's key or the operator's token as its bearer token. Taken as an extractor,
//! so no handler of an account's own settings can forget to check it.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::admin::token_is_admin;
use super::api::{db_error, error};
use super::ApiState;
use crate::notify::subscriptions;

/// An account the request proved it may manage.
pub struct Keyed(pub String);

fn bearer(headers: &HeaderMap) -> &str {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
}

/// `None` when the request may manage `account`, else the refusal.
async fn refuse(s: &ApiState, headers: &HeaderMap, account: &str) -> Option<Response> {
    if account.is_empty() || account.len() > 128 {
        return Some(error(StatusCode::BAD_REQUEST, "not an account name"));
    }
    let given = bearer(headers);
    if token_is_admin(s, given) {
        return None;
    }
    match subscriptions::key_matches(&s.store, account, given).await {
        Ok(true) => None,
        Ok(false) => Some(error(
            StatusCode::UNAUTHORIZED,
            "give the account's key as a bearer token (its miner sets it once with the \
             Stratum password key=SECRET, 16 characters or more)",
        )),
        Err(e) => Some(db_error(e)),
    }
}

impl FromRequestParts<Arc<ApiState>> for Keyed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, s)
            .await
            .map_err(IntoResponse::into_response)?;
        let account = params
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or_default();
        match refuse(s, &parts.headers, &account).await {
            Some(r) => Err(r),
            None => Ok(Keyed(account)),
        }
    }
}
