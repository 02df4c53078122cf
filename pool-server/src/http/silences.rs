//! Silences over HTTP. The operator's, with the admin token: `POST /api/silences`
//! `{"matchers": "account=alice* rule=worker_offline", "duration": "2h", "comment": "..."}`,
//! `DELETE /api/silences/{id}`; `GET /api/silences` lists those in force (public, as every
//! read). A miner's, with its account's key: `GET`/`POST /api/accounts/{name}/silences`,
//! `DELETE .../{id}`, always narrowed to that account.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;

use super::account_key::Keyed;
use super::api::{db_error, error};
use super::ApiState;
use crate::notify::matcher::Matchers;
use crate::notify::silences;

/// The longest silence.
const MAX_DURATION: Duration = Duration::from_secs(90 * 24 * 3600);

#[derive(Deserialize)]
pub struct NewSilence {
    #[serde(default)]
    pub matchers: String,
    /// How long, as `30m`, `2h`, `3days`.
    pub duration: String,
    #[serde(default)]
    pub comment: String,
}

async fn create(s: &ApiState, body: NewSilence, account: Option<&str>) -> Response {
    let mut matchers = match Matchers::parse(&body.matchers) {
        Ok(m) => m,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    if let Some(account) = account {
        matchers = matchers.with_account(account);
    }
    let duration = match humantime::parse_duration(body.duration.trim()) {
        Ok(d) if !d.is_zero() && d <= MAX_DURATION => d,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "duration: a length such as 30m, 2h or 3days, at most 90 days",
            )
        }
    };
    let now = Utc::now().timestamp_millis();
    let ends = now + duration.as_millis() as i64;
    match silences::add(&s.store, &matchers, account, ends, &body.comment, now).await {
        Ok(Some(silence)) => (StatusCode::CREATED, Json(silence)).into_response(),
        Ok(None) => error(StatusCode::CONFLICT, "too many silences in force"),
        Err(e) => db_error(e),
    }
}

async fn listed(s: &ApiState, account: Option<&str>) -> Response {
    match silences::active(&s.store, Utc::now().timestamp_millis(), account).await {
        Ok(v) => Json(json!({ "silences": v })).into_response(),
        Err(e) => db_error(e),
    }
}

async fn ended(s: &ApiState, id: &str, account: Option<&str>) -> Response {
    match silences::end(&s.store, id, account, Utc::now().timestamp_millis()).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such silence in force"),
        Err(e) => db_error(e),
    }
}

pub async fn list(State(s): State<Arc<ApiState>>) -> Response {
    listed(&s, None).await
}

pub async fn add(
    State(s): State<Arc<ApiState>>,
    _: super::admin::Admin,
    Json(body): Json<NewSilence>,
) -> Response {
    create(&s, body, None).await
}

pub async fn remove(
    State(s): State<Arc<ApiState>>,
    _: super::admin::Admin,
    Path(id): Path<String>,
) -> Response {
    ended(&s, &id, None).await
}

pub async fn list_own(State(s): State<Arc<ApiState>>, Keyed(account): Keyed) -> Response {
    listed(&s, Some(&account)).await
}

pub async fn add_own(
    State(s): State<Arc<ApiState>>,
    Keyed(account): Keyed,
    Json(body): Json<NewSilence>,
) -> Response {
    create(&s, body, Some(&account)).await
}

pub async fn remove_own(
    State(s): State<Arc<ApiState>>,
    Keyed(account): Keyed,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    ended(&s, &id, Some(&account)).await
}
