//! HTTP: the public read API, the token-guarded admin API, `/metrics` and the dashboard.

mod account_key;
pub mod accounts;
pub mod admin;
pub mod alerts;
pub mod api;
pub mod dashboard;
pub mod directory;
pub mod edges;
pub mod refreshed;
pub mod serve;
pub mod silences;
pub mod subscriptions;
pub mod worker_table;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;

use self::directory::Snapshot;
use self::refreshed::Refreshed;
use crate::chain::embedded::EmbeddedChain;
use crate::jobs::JobFeed;
use crate::metrics::Metrics;
use crate::net::bans::BanList;
use crate::p2p::manager::Node;
use crate::rewards::accounts::{balances, Balance};
use crate::stats::Stats;
use crate::store::Backend;

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
    /// The alert rules: what fires now and what fired lately.
    pub alerts: crate::notify::SharedEngine,
    /// This pool-server as one edge of several (`None` when it runs alone).
    pub edge: Option<Arc<crate::edge::Edge>>,
    /// Whether miners' webhooks may point at private addresses.
    pub alerts_allow_private: bool,
    /// The secret this process tags key challenges with (see `notify/proof.rs`).
    pub challenge_secret: [u8; 32],
    /// Whether an SMTP relay is configured (miners may subscribe an email address).
    pub alerts_can_mail: bool,
    pub source: &'static str,
    pub api_token: Option<String>,
    /// The network account addresses belong to.
    pub network: bitcoin::Network,
    pub started: Instant,
    /// Every worker, merged and sorted, rebuilt at most every few seconds.
    pub directory: Arc<Refreshed<Snapshot>>,
    /// Every account's balances, summed at most every few seconds.
    pub balances: Arc<Refreshed<Vec<Balance>>>,
    /// `/metrics`' text (coalesced only: never older than the scrape).
    pub metrics_text: Arc<Refreshed<bytes::Bytes>>,
}

impl ApiState {
    /// The worker directory's current snapshot.
    pub async fn directory(&self) -> anyhow::Result<Arc<Snapshot>> {
        let (stats, store) = (self.stats.clone(), self.store.clone());
        let previous = self.directory.current();
        self.directory
            .get(move || Snapshot::build(stats, store, previous))
            .await
    }

    /// Every account's balances, by name.
    pub async fn balances(&self) -> anyhow::Result<Arc<Vec<Balance>>> {
        let (store, network) = (self.store.clone(), self.network);
        self.balances
            .get(move || async move { balances(&store, network, None).await })
            .await
    }
}

pub fn router(state: Arc<ApiState>) -> Router {
    dashboard::routes(Router::new())
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/pool", get(api::pool))
        .route("/api/workers", get(api::workers))
        .route("/api/workers/{name}", get(api::worker))
        .route("/api/worker-table", get(worker_table::table))
        .route("/api/blocks", get(api::blocks))
        .route("/api/peers", get(api::peers))
        .route("/api/edges", get(edges::list))
        .route("/api/alerts", get(alerts::list))
        .route(
            "/api/accounts/{name}/subscriptions",
            get(subscriptions::list).post(subscriptions::add),
        )
        .route(
            "/api/accounts/{name}/subscriptions/{id}",
            delete(subscriptions::remove),
        )
        .route(
            "/api/accounts/{name}/subscriptions/{id}/test",
            post(subscriptions::test),
        )
        .route(
            "/api/accounts/{name}/key",
            delete(subscriptions::reset_key).put(subscriptions::key_by_signature),
        )
        .route(
            "/api/accounts/{name}/key-challenge",
            post(subscriptions::key_challenge),
        )
        .route(
            "/api/accounts/{name}/deliveries",
            get(subscriptions::deliveries),
        )
        .route("/api/alerts/deliveries", get(subscriptions::all_deliveries))
        .route(
            "/api/accounts/{name}/silences",
            get(silences::list_own).post(silences::add_own),
        )
        .route(
            "/api/accounts/{name}/silences/{id}",
            delete(silences::remove_own),
        )
        .route("/api/silences", get(silences::list).post(silences::add))
        .route("/api/silences/{id}", delete(silences::remove))
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

/// The exposition, refreshed and rendered on the blocking pool, one render at a time: a crowd
/// of scrapes shares renders (each answer is no older than its request) and the async
/// threads Stratum runs on never walk every worker.
async fn metrics(State(s): State<Arc<ApiState>>) -> Response {
    let (m, stats, jobs, banned) = (
        s.metrics.clone(),
        s.stats.clone(),
        s.jobs.clone(),
        s.bans.len(),
    );
    let text = s
        .metrics_text
        .get(move || async move {
            tokio::task::spawn_blocking(move || {
                m.refresh(&stats, &jobs, banned);
                bytes::Bytes::from(m.render())
            })
            .await
            .map_err(anyhow::Error::from)
        })
        .await;
    match text {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            bytes::Bytes::clone(&text),
        )
            .into_response(),
        Err(e) => api::error(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("rendering the metrics failed: {e}"),
        ),
    }
}
