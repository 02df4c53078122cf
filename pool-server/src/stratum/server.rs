//! Listeners: accept connections, enforce the connection caps and bans, and start a session
//! task for each miner.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use protocol::Difficulty;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::session::{self, SessionContext};

/// Caps on concurrent connections, in total and per address, where an address is counted as
/// bans count it ([`super::bans::ban_key`]: IPv4 as is, IPv6 by its /64), so a host with a
/// /64 of its own cannot walk past the cap one address at a time.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One counted connection; uncounted on drop.
pub struct ConnectionSlot {
    ip: IpAddr,
    limits: Arc<ConnectionLimits>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut g = self.limits.state.lock();
        g.0 -= 1;
        if let Some(n) = g.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_ip,
            state: Mutex::new((0, HashMap::new())),
        })
    }

    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, &'static str> {
        let ip = super::bans::ban_key(ip);
        let mut g = self.state.lock();
        if g.0 >= self.max_total {
            return Err("max-connections");
        }
        let per_ip = g.1.entry(ip).or_insert(0);
        if *per_ip >= self.max_per_ip {
            return Err("max-connections-per-ip");
        }
        *per_ip += 1;
        g.0 += 1;
        Ok(ConnectionSlot {
            ip,
            limits: self.clone(),
        })
    }
}

/// The next connection on `listener`, or `None` at shutdown. A failed accept (out of file
/// descriptors and the like) is logged and retried after a pause instead of spinning.
pub async fn accept(
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return None,
            a = listener.accept() => a,
        };
        match accepted {
            Ok(x) => return Some(x),
            Err(e) => {
                let local = listener.local_addr().ok();
                tracing::warn!(error = %e, listener = ?local, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

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
        if ctx.bans.is_banned(peer.ip()) {
            ctx.metrics
                .disconnects
                .with_label_values(&["banned-ip"])
                .inc();
            continue;
        }
        let slot = match limits.try_acquire(peer.ip()) {
            Ok(s) => s,
            Err(cause) => {
                tracing::debug!(peer = %peer, cause, "connection refused");
                ctx.metrics.disconnects.with_label_values(&[cause]).inc();
                continue;
            }
        };
        ctx.metrics.connections.inc();
        ctx.metrics.sessions.inc();
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let metrics = ctx.metrics.clone();
            let cause = session::run(ctx, stream, peer, start_difficulty, shutdown).await;
            metrics.sessions.dec();
            metrics.disconnects.with_label_values(&[cause]).inc();
            drop(slot);
        });
    }
}
