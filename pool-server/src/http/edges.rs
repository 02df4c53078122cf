//! `GET /api/edges`: the edges of the pool (several pool-servers on one database), each with
//! its address, load and health, read from the shared database by whichever edge answers.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::ApiState;

pub async fn list(State(s): State<Arc<ApiState>>) -> Response {
    let Some(edge) = &s.edge else {
        return Json(json!({ "enabled": false, "edges": [] })).into_response();
    };
    match edge.list().await {
        Ok(edges) => Json(json!({
            "enabled": true,
            "this": edge.id.prefix(),
            "edges": edges,
        }))
        .into_response(),
        Err(e) => {
            tracing::debug!(error = %e, "edges not read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "the database is unavailable" })),
            )
                .into_response()
        }
    }
}
