//! Start-up of the share store (database, or the spool while it is away), its retention task,
//! and the hashrate windows warmed from its rollups so a restart leaves no hole.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::stats::Stats;
use crate::store::{retention, rollup, Store, StoreOptions};

pub async fn open(
    cfg: &Config,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Store> {
    let s = &cfg.store;
    let store = Store::open(
        StoreOptions {
            url: &s.database_url,
            spool_dir: &s.spool_dir,
            batch: s.store_batch,
            flush: s.store_flush,
            queue: s.store_queue,
            connect_patience: Duration::from_secs(5),
        },
        metrics.store.clone(),
    )
    .await?;
    tracing::info!(backend = store.backend.kind(), "share store ready");
    tokio::spawn(retention::run(
        store.backend.clone(),
        retention::Policy {
            shares: s.share_retention,
            minutes: s.minute_rollup_retention,
            hours: s.rollup_retention,
        },
        shutdown.clone(),
    ));
    Ok(store)
}

/// Per-worker and pool hashrate: the last hour of every worker and the pool's day of history
/// come back from the rollups.
pub async fn warm_stats(store: &Store) -> Arc<Stats> {
    let stats = Arc::new(Stats::new());
    if store.connected() {
        let now = chrono::Utc::now();
        let hour = now - chrono::Duration::hours(1);
        match rollup::warm_minutes(&store.backend, hour, now - chrono::Duration::hours(24)).await {
            Ok(m) => {
                stats.warm(&m);
                tracing::info!(
                    minutes = m.len(),
                    "hashrate windows warmed from the rollups"
                );
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the rollups; windows start empty"),
        }
    }
    stats
}
