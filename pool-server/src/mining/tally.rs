//! Where a channel's accepted shares are counted, resolved once: its first worker's stats
//! entries and metric series, so that a share costs no lookup by name.

use prometheus::{Gauge, IntCounter};
use protocol::WorkerName;

use super::context::MiningContext;
use crate::stats::WorkerTally;

/// Where the accepted shares of a channel's first worker are counted: its stats entries and
/// its metric series, resolved once at its first accepted share. Neither goes away while the
/// channel holds the worker's session (stats prune, and metrics drop the series of, only
/// workers without one).
pub struct ShareTally {
    pub worker: WorkerName,
    pub stats: WorkerTally,
    pub accepted: IntCounter,
    pub last_share: Gauge,
}

impl ShareTally {
    pub fn new(ctx: &MiningContext, worker: &WorkerName) -> Self {
        let name = worker.as_str();
        ShareTally {
            worker: worker.clone(),
            stats: ctx.stats.tally(name),
            accepted: ctx
                .metrics
                .worker_shares
                .with_label_values(&[name, "accepted", ""]),
            last_share: ctx.metrics.worker_last_share.with_label_values(&[name]),
        }
    }
}
