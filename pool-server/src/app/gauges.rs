//! The derived gauges, kept fresh between scrapes: a walk over every worker every 5 s (on the
//! blocking pool, off the threads sessions run on), and the parked channels expired.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::jobs::JobFeed;
use crate::metrics::Metrics;
use crate::mining::MiningContext;
use crate::stats::Stats;

pub fn spawn(
    metrics: Arc<Metrics>,
    stats: Arc<Stats>,
    jobs: JobFeed,
    mining: Arc<MiningContext>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = t.tick() => {
                    let (m, st, j, banned) =
                        (metrics.clone(), stats.clone(), jobs.clone(), mining.bans.len());
                    let _ = tokio::task::spawn_blocking(move || m.refresh(&st, &j, banned)).await;
                    mining.resume.expire();
                    metrics.sessions_parked.set(mining.resume.len() as i64);
                }
            }
        }
    });
}
