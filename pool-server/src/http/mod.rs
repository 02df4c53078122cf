//! HTTP: the public read API, the token-guarded admin API, `/metrics` and the dashboard.

pub mod accounts;
pub mod admin;
pub mod api;
pub mod dashboard;
pub mod serve;
pub mod worker_table;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::chain::embedded::EmbeddedChain;
use crate::jobs::JobFeed;
use crate::metrics::Metrics;
use crate::p2p::manager::Node;
use crate::stats::Stats;
use crate::store::Backend;
use crate::stratum::bans::BanList;

/// What the handlers read.
pub struct ApiState {
    pub stats: Arc<Stats>,
    pub store: Backend,
    pub metrics: Arc<Metrics>,
    pub bans: Arc<BanList>,
    pub jobs: JobFeed,
    /// The embedded chain, when it is the template source (it takes fed transactions).
    pub chain: Option<Arc<EmbeddedChain>>,
    /// The P2P node, when the embedded chain has peers.
    pub p2p: Option<Arc<Node>>,
    pub source: &'static str,
    pub api_token: Option<String>,
    /// The network account addresses belong to.
    pub network: bitcoin::Network,
    pub started: Instant,
}

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/dashboard.js", get(dashboard::script))
        .route("/dashboard.css", get(dashboard::style))
        .route("/charts.js", get(dashboard::charts))
        .route("/worker", get(dashboard::worker_page))
        .route("/worker.js", get(dashboard::worker_script))
        .route("/account", get(dashboard::account_page))
        .route("/account.js", get(dashboard::account_script))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/pool", get(api::pool))
        .route("/api/workers", get(api::workers))
        .route("/api/workers/{name}", get(api::worker))
        .route("/api/worker-table", get(worker_table::table))
        .route("/api/blocks", get(api::blocks))
        .route("/api/peers", get(api::peers))
        .route("/api/shares", get(api::shares))
        .route("/api/accounts", get(accounts::list))
        .route("/api/accounts/{name}", get(accounts::one))
        .route("/api/accounts/{name}/address", put(accounts::set_address))
        .route("/api/blocks/{hash}/rewards", get(accounts::block_rewards))
        .route("/api/mempool", post(admin::feed_transaction))
        .route("/api/bans", get(admin::list_bans).post(admin::add_ban))
        .route("/api/bans/{ip}", delete(admin::lift_ban))
        .with_state(state)
}

async fn metrics(State(s): State<Arc<ApiState>>) -> impl IntoResponse {
    s.metrics.refresh(&s.stats, &s.jobs, s.bans.len());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}
