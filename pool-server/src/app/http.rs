//! Start-up of the HTTP listener: the read API, dashboard, admin API and /metrics over the
//! parts they read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::chain::Templates;
use crate::config::Config;
use crate::http::refreshed::Refreshed;
use crate::http::{self, directory, ApiState};
use crate::jobs::JobFeed;
use crate::metrics::Metrics;
use crate::net::{BanList, ConnectionLimits};
use crate::notify::SharedEngine;
use crate::p2p::manager::Node;
use crate::stats::Stats;
use crate::store::Store;

/// What the API reads.
pub struct Readable<'a> {
    pub store: &'a Store,
    pub stats: &'a Arc<Stats>,
    pub metrics: &'a Arc<Metrics>,
    pub bans: &'a Arc<BanList>,
    pub jobs: &'a JobFeed,
    pub templates: &'a Templates,
    pub p2p: &'a Option<Arc<Node>>,
    pub alerts: &'a SharedEngine,
    pub edge: &'a Option<Arc<crate::edge::Edge>>,
    pub started: Instant,
}

pub async fn serve(
    cfg: &Config,
    parts: Readable<'_>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let m = parts.metrics;
    let api = Arc::new(ApiState {
        stats: parts.stats.clone(),
        store: parts.store.backend.clone(),
        metrics: parts.metrics.clone(),
        bans: parts.bans.clone(),
        jobs: parts.jobs.clone(),
        chain: parts.templates.chain.clone(),
        p2p: parts.p2p.clone(),
        alerts: parts.alerts.clone(),
        edge: parts.edge.clone(),
        alerts_allow_private: cfg.alerts.alert_allow_private_destinations,
        alerts_can_mail: cfg.alerts.alert_smtp_url.is_some(),
        challenge_secret: rand::random(),
        source: parts.templates.source.kind(),
        api_token: cfg.http.api_token.clone(),
        network: cfg.rewards.network,
        started: parts.started,
        directory: view(m, "workers", directory::FRESH, directory::STALE),
        balances: view(m, "balances", directory::FRESH, directory::STALE),
        // Zero ages: concurrent scrapes share one render, and nothing is served stale.
        metrics_text: view(m, "metrics", Duration::ZERO, Duration::ZERO),
    });
    let h = &cfg.http;
    let listener = TcpListener::bind(h.listen)
        .await
        .with_context(|| format!("binding HTTP {}", h.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(addr = %addr, "HTTP listening (API, dashboard, /metrics)");
    let task = tokio::spawn(http::serve::serve(
        listener,
        http::router(api),
        ConnectionLimits::new(
            h.http_max_connections as usize,
            h.http_max_connections_per_ip as usize,
        ),
        h.http_header_timeout,
        shutdown.clone(),
    ));
    Ok((addr, task))
}

/// A shared view, its builds counted under `name`.
fn view<T: Send + Sync + 'static>(
    metrics: &Metrics,
    name: &str,
    fresh: Duration,
    stale: Duration,
) -> Arc<Refreshed<T>> {
    Arc::new(Refreshed::new(fresh, stale).counting(metrics.view_builds.with_label_values(&[name])))
}
