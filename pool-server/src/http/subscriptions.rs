//! A miner's own alert subscriptions (a webhook, a chat webhook, ntfy, Telegram or email): `GET`/`POST /api/accounts/{name}/subscriptions`,
//! `DELETE .../{id}`, `POST .../{id}/test`. Each needs `Authorization: Bearer KEY`, the
//! account's key (set by its miner from the Stratum password, `key=SECRET`) or the
//! operator's admin token. Nothing is shown without it, and a webhook's URL is never shown
//! back whole (its path is often its secret).

use std::sync::Arc;

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
use crate::mining::account::key_digest;
use crate::notify::channel::Target;
use crate::notify::{guard, outbox, proof, subscriptions};

pub async fn list(State(s): State<Arc<ApiState>>, Keyed(account): Keyed) -> Response {
    match subscriptions::list(&s.store, &account).await {
        Ok(v) => Json(json!({ "subscriptions": v })).into_response(),
        Err(e) => db_error(e),
    }
}

/// `{"url": "https://..."}`, or with a channel: `{"kind": "telegram", "url": "..."}`,
/// `{"url": "slack:https://..."}`, `{"url": "mailto:me@example.com"}`.
#[derive(Deserialize)]
pub struct AddSubscription {
    pub url: String,
    #[serde(default)]
    pub kind: Option<String>,
}

pub async fn add(
    State(s): State<Arc<ApiState>>,
    Keyed(account): Keyed,
    Json(body): Json<AddSubscription>,
) -> Response {
    let spec = match body.kind.as_deref() {
        None | Some("webhook") | Some("json") => body.url.trim().to_owned(),
        Some("email") => format!("mailto:{}", body.url.trim().trim_start_matches("mailto:")),
        Some(kind) => format!("{kind}:{}", body.url.trim()),
    };
    let target = match Target::parse(&spec) {
        Ok(t) => t,
        Err(why) => return error(StatusCode::BAD_REQUEST, why),
    };
    if let Some(url) = target.url() {
        if let Err(why) = guard::check(url, s.alerts_allow_private).await {
            return error(StatusCode::BAD_REQUEST, why);
        }
    } else if !s.alerts_can_mail {
        return error(
            StatusCode::BAD_REQUEST,
            "this pool sends no email (its operator has set no SMTP relay)",
        );
    }
    let now = Utc::now().timestamp_millis();
    match subscriptions::add(&s.store, &account, &target, now).await {
        Ok(Some(sub)) => (StatusCode::CREATED, Json(sub)).into_response(),
        Ok(None) => error(
            StatusCode::CONFLICT,
            format!(
                "an account has at most {} subscriptions",
                subscriptions::MAX_PER_ACCOUNT
            ),
        ),
        Err(e) => db_error(e),
    }
}

pub async fn remove(
    State(s): State<Arc<ApiState>>,
    Keyed(account): Keyed,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    match subscriptions::remove(&s.store, &account, &id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, "no such subscription"),
        Err(e) => db_error(e),
    }
}

/// Send a test alert to one subscription now (through the outbox, as any alert).
pub async fn test(
    State(s): State<Arc<ApiState>>,
    Keyed(account): Keyed,
    Path((_, id)): Path<(String, String)>,
) -> Response {
    match subscriptions::list(&s.store, &account).await {
        Ok(subs) if subs.iter().any(|x| x.id == id) => {}
        Ok(_) => return error(StatusCode::NOT_FOUND, "no such subscription"),
        Err(e) => return db_error(e),
    }
    let alert = crate::notify::Alert::test(&account, Utc::now());
    let row = crate::notify::outbox::Outgoing {
        destination: &id,
        alert: &alert,
    };
    match crate::notify::outbox::queue(&s.store, &[row], Utc::now().timestamp_millis(), 0).await {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({ "queued": true }))).into_response(),
        Err(e) => db_error(e),
    }
}

/// Admin: forget an account's key, so that its miner may set a new one (a lost key, or a key
/// someone else set first). Its subscriptions stay.
pub async fn reset_key(
    State(s): State<Arc<ApiState>>,
    _: super::admin::Admin,
    Path(account): Path<String>,
) -> Response {
    match subscriptions::reset_key(&s.store, &account).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => db_error(e),
    }
}

/// The account's delivery history: what was sent to its own destinations, newest first,
/// with each message's state, attempts and last error (`?limit=`, at most 500).
pub async fn deliveries(
    State(s): State<Arc<ApiState>>,
    Keyed(account): Keyed,
    axum::extract::Query(q): axum::extract::Query<HistoryQuery>,
) -> Response {
    let ids = match subscriptions::destinations_of(&s.store, &account).await {
        Ok(ids) => ids,
        Err(e) => return db_error(e),
    };
    match outbox::history(&s.store, Some(&ids), q.limit()).await {
        Ok(v) => Json(json!({ "deliveries": v })).into_response(),
        Err(e) => db_error(e),
    }
}

/// Admin: every delivery, newest first (the operator's destinations and every account's).
pub async fn all_deliveries(
    State(s): State<Arc<ApiState>>,
    _: super::admin::Admin,
    axum::extract::Query(q): axum::extract::Query<HistoryQuery>,
) -> Response {
    match outbox::history(&s.store, None, q.limit()).await {
        Ok(v) => Json(json!({ "deliveries": v })).into_response(),
        Err(e) => db_error(e),
    }
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    pub limit: Option<i64>,
}

impl HistoryQuery {
    fn limit(&self) -> i64 {
        self.limit.unwrap_or(100).clamp(1, 500)
    }
}

/// `{"key": "NEW-KEY"}`: the key an address account wants.
#[derive(Deserialize)]
pub struct KeyOffer {
    pub key: String,
}

/// `{"key": "NEW-KEY", "expires": UNIX, "signature": "BASE64"}`: the challenge signed.
#[derive(Deserialize)]
pub struct SignedKey {
    pub key: String,
    pub expires: i64,
    pub signature: String,
}

/// `None` for a key an account may have, else the refusal.
fn bad_key(key: &str) -> Option<Response> {
    ((16..=256).contains(&key.len()) && !key.contains(','))
        .then_some(())
        .map_or_else(
            || {
                Some(error(
                    StatusCode::BAD_REQUEST,
                    "a key is 16 to 256 characters, without commas",
                ))
            },
            |()| None,
        )
}

/// The message an account named by a Bitcoin address signs to set its key (public: nothing
/// is stored; the message itself carries what the answer is checked against).
pub async fn key_challenge(
    State(s): State<Arc<ApiState>>,
    Path(account): Path<String>,
    Json(offer): Json<KeyOffer>,
) -> Response {
    if let Some(r) = bad_key(&offer.key) {
        return r;
    }
    match proof::verify(&account, "", "") {
        Err(proof::ProofError::NotAnAddress) => {
            return error(
                StatusCode::BAD_REQUEST,
                "only an account named by a Bitcoin address can prove itself by a signature",
            )
        }
        Err(e @ proof::ProofError::Unsupported) => {
            return error(StatusCode::BAD_REQUEST, e.to_string())
        }
        _ => {}
    }
    let expires = Utc::now().timestamp() + proof::CHALLENGE_SECONDS;
    let digest = key_digest(&account, &offer.key);
    Json(json!({
        "message": proof::challenge(&s.challenge_secret, &account, &digest, expires),
        "expires": expires,
    }))
    .into_response()
}

/// Set the key of an account named by a Bitcoin address with the challenge signed by that
/// address (`signmessage` for P2PKH, BIP-322 simple for P2WPKH and P2TR). A proof replaces
/// whatever key was set before, from Stratum or not.
pub async fn key_by_signature(
    State(s): State<Arc<ApiState>>,
    Path(account): Path<String>,
    Json(body): Json<SignedKey>,
) -> Response {
    if let Some(r) = bad_key(&body.key) {
        return r;
    }
    let now = Utc::now().timestamp();
    if body.expires < now || body.expires > now + proof::CHALLENGE_SECONDS {
        return error(
            StatusCode::BAD_REQUEST,
            "the challenge has ended: ask for a new one",
        );
    }
    let digest = key_digest(&account, &body.key);
    let message = proof::challenge(&s.challenge_secret, &account, &digest, body.expires);
    match proof::verify(&account, &message, &body.signature) {
        Ok(()) => {}
        Err(proof::ProofError::Wrong) => {
            return error(
                StatusCode::UNAUTHORIZED,
                proof::ProofError::Wrong.to_string(),
            )
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    }
    match subscriptions::set_key(&s.store, &account, &digest, now * 1000).await {
        Ok(()) => {
            tracing::info!(account = %account, "account key set by a signature of its address");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => db_error(e),
    }
}
