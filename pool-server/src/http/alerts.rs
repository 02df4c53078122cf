//! `GET /api/alerts`: what the alert rules see firing now and what they said lately, for
//! the whole pool or one account (`?account=NAME`) or worker (`?worker=NAME`). Read-only and
//! public, like the worker list the names come from.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::ApiState;
use crate::notify::Alert;

/// At most this many recent alerts in one answer.
const RECENT: usize = 100;

#[derive(Deserialize)]
pub struct AlertQuery {
    pub account: Option<String>,
    pub worker: Option<String>,
}

impl AlertQuery {
    fn wants(&self, a: &Alert) -> bool {
        self.account.as_deref().is_none_or(|x| a.account == x)
            && self.worker.as_deref().is_none_or(|x| a.worker == x)
    }
}

pub async fn list(State(s): State<Arc<ApiState>>, Query(q): Query<AlertQuery>) -> Response {
    let (firing, recent) = {
        let e = s.alerts.lock();
        let firing: Vec<Alert> = e.firing().into_iter().filter(|a| q.wants(a)).collect();
        let recent: Vec<Alert> = e
            .history()
            .into_iter()
            .filter(|a| q.wants(a))
            .take(RECENT)
            .collect();
        (firing, recent)
    };
    Json(json!({ "firing": firing, "recent": recent })).into_response()
}
