//! The Stratum V1 listener: accept connections, enforce the connection caps and bans, and
//! start a session task for each miner.

use std::net::SocketAddr;
use std::sync::Arc;

use protocol::Difficulty;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::session::{self, SessionContext};
use crate::net::proxy::{self, Cidr};
use crate::net::{accept, ConnectionLimits, ConnectionSlot};

/// Who may start a session: the connection caps, and the load balancers whose connections
/// begin with a PROXY header.
#[derive(Clone)]
pub struct Admission {
    pub limits: Arc<ConnectionLimits>,
    pub proxy_from: Arc<[Cidr]>,
}

/// Accept on `listener` until `shutdown`, one session task per connection (sessions end at
/// `sessions_stop`). Connections from `proxy_from` (load balancers) begin with a PROXY header
/// naming the miner's address, read in the connection's own task; bans and caps apply to the
/// address it names.
pub async fn serve(
    listener: TcpListener,
    start_difficulty: Difficulty,
    ctx: Arc<SessionContext>,
    admission: Admission,
    shutdown: CancellationToken,
    sessions_stop: CancellationToken,
    tracker: TaskTracker,
) {
    let Admission { limits, proxy_from } = admission;
    while let Some((mut stream, peer)) = accept(&listener, &shutdown).await {
        if !proxy_from.iter().any(|n| n.contains(peer.ip())) {
            let Some(slot) = admit(&ctx, &limits, peer) else {
                continue;
            };
            let (ctx, stop) = (ctx.clone(), sessions_stop.clone());
            tracker.spawn(run(ctx, stream, peer, start_difficulty, slot, stop));
            continue;
        }
        let (ctx, limits, shutdown) = (ctx.clone(), limits.clone(), sessions_stop.clone());
        tracker.spawn(async move {
            let miner = tokio::select! {
                _ = shutdown.cancelled() => return,
                header = proxy::read_header(&mut stream) => match header {
                    Ok(named) => named.unwrap_or(peer),
                    Err(e) => {
                        tracing::info!(balancer = %peer, error = %e, "connection closed");
                        ctx.mining
                            .metrics
                            .disconnects
                            .with_label_values(&["proxy-header"])
                            .inc();
                        return;
                    }
                },
            };
            let Some(slot) = admit(&ctx, &limits, miner) else {
                return;
            };
            run(ctx, stream, miner, start_difficulty, slot, shutdown).await;
        });
    }
}

/// Whether a connection from `peer` may start a session (not banned, within the caps): its
/// slot among the connections.
fn admit(
    ctx: &SessionContext,
    limits: &Arc<ConnectionLimits>,
    peer: SocketAddr,
) -> Option<ConnectionSlot> {
    let mining = &ctx.mining;
    if mining.bans.is_banned(peer.ip()) {
        mining
            .metrics
            .disconnects
            .with_label_values(&["banned-ip"])
            .inc();
        return None;
    }
    match limits.try_acquire(peer.ip()) {
        Ok(slot) => Some(slot),
        Err(cause) => {
            tracing::debug!(peer = %peer, cause, "connection refused");
            mining.metrics.disconnects.with_label_values(&[cause]).inc();
            None
        }
    }
}

/// One admitted connection's session, to its end.
async fn run(
    ctx: Arc<SessionContext>,
    stream: TcpStream,
    peer: SocketAddr,
    start_difficulty: Difficulty,
    slot: ConnectionSlot,
    shutdown: CancellationToken,
) {
    let metrics = ctx.mining.metrics.clone();
    metrics.connections.inc();
    metrics.sessions.inc();
    let cause = session::run(ctx, stream, peer, start_difficulty, shutdown).await;
    metrics.sessions.dec();
    metrics.disconnects.with_label_values(&[cause]).inc();
    drop(slot);
}
