//! The Stratum V1 listener: accept connections, enforce the connection caps and bans, and
//! start a session task for each miner.

use std::sync::Arc;

use protocol::Difficulty;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::session::{self, SessionContext};
use crate::net::{accept, ConnectionLimits};

/// Accept on `listener` until shutdown, one session task per connection.
pub async fn serve(
    listener: TcpListener,
    start_difficulty: Difficulty,
    ctx: Arc<SessionContext>,
    limits: Arc<ConnectionLimits>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    while let Some((stream, peer)) = accept(&listener, &shutdown).await {
        let mining = &ctx.mining;
        if mining.bans.is_banned(peer.ip()) {
            mining
                .metrics
                .disconnects
                .with_label_values(&["banned-ip"])
                .inc();
            continue;
        }
        let slot = match limits.try_acquire(peer.ip()) {
            Ok(s) => s,
            Err(cause) => {
                tracing::debug!(peer = %peer, cause, "connection refused");
                mining.metrics.disconnects.with_label_values(&[cause]).inc();
                continue;
            }
        };
        mining.metrics.connections.inc();
        mining.metrics.sessions.inc();
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let metrics = ctx.mining.metrics.clone();
            let cause = session::run(ctx, stream, peer, start_difficulty, shutdown).await;
            metrics.sessions.dec();
            metrics.disconnects.with_label_values(&[cause]).inc();
            drop(slot);
        });
    }
}
