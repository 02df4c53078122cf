//! Pools in failover order: connect to the first that answers, back off with jitter between
//! attempts, follow `client.reconnect`, and go back to the primary when it returns.
//!
//! The backoff grows across every session that ends without having worked (lasted
//! [`session::STABLE_AFTER`] or had a share accepted), whatever the pool says: a pool that
//! asks for an immediate reconnect after each handshake, or that sends a job and closes,
//! gets fewer and fewer connections, not a storm. A reconnect the pool asks for waits at
//! least [`RECONNECT_FLOOR`].

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc::Receiver;
use tokio_util::sync::CancellationToken;

use super::session::{self, Outcome, SessionConfig};
use crate::config::PoolUrl;
use crate::miner::FoundShare;
use crate::status::Status;
use crate::work::WorkBoard;

/// The shortest wait before following `client.reconnect` (a pool's `0` included).
pub const RECONNECT_FLOOR: Duration = Duration::from_secs(1);

/// Exponential backoff: 250 ms doubling up to `max`, each wait jittered by +-50 %.
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(max: Duration) -> Self {
        Backoff {
            next: Duration::from_millis(250),
            max,
        }
    }

    pub fn reset(&mut self) {
        self.next = Duration::from_millis(250);
    }

    pub fn next_wait(&mut self) -> Duration {
        let base = self.next.min(self.max);
        self.next = (self.next * 2).min(self.max);
        base.mul_f64(rand::thread_rng().gen_range(0.5..1.5))
    }
}

pub struct FailoverConfig {
    pub pools: Vec<PoolUrl>,
    pub retry_max: Duration,
    pub failback_interval: Duration,
    pub session: SessionConfig,
}

/// Run until shutdown.
pub async fn run(
    cfg: FailoverConfig,
    board: Arc<WorkBoard>,
    status: Arc<Status>,
    mut shares: Receiver<FoundShare>,
    shutdown: CancellationToken,
) {
    let mut index = 0usize;
    let mut backoff = Backoff::new(cfg.retry_max);
    let mut redirect: Option<PoolUrl> = None;
    let mut connection = 0u64;
    let memory = Arc::new(super::state::Memory::default());
    loop {
        let pool = redirect.clone().unwrap_or_else(|| cfg.pools[index].clone());
        connection += 1;
        let failback = (index > 0 || redirect.is_some())
            .then(|| (cfg.pools[0].clone(), cfg.failback_interval));
        let outcome = session::run(
            &pool,
            &cfg.session,
            connection,
            failback,
            session::Plumbing {
                memory: &memory,
                board: &board,
                status: &status,
                shares: &mut shares,
                shutdown: &shutdown,
            },
        )
        .await;
        board.clear();
        status
            .connected
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let wait = match outcome {
            Outcome::Shutdown => return,
            Outcome::Failback => {
                index = 0;
                redirect = None;
                backoff.reset();
                Duration::ZERO
            }
            Outcome::Reconnect { to, wait, healthy } => {
                let wait = if healthy {
                    backoff.reset();
                    wait.max(RECONNECT_FLOOR)
                } else {
                    wait.max(RECONNECT_FLOOR).max(backoff.next_wait())
                };
                tracing::info!(
                    to = ?to.as_ref().map(|p| p.to_string()),
                    wait_ms = wait.as_millis() as u64,
                    "pool asked us to reconnect"
                );
                // A pool reached over TLS sends its miners on over TLS.
                redirect = to.map(|to| PoolUrl {
                    tls: pool.tls,
                    ..to
                });
                wait
            }
            Outcome::Lost {
                reason,
                mined,
                healthy,
            } => {
                tracing::warn!(pool = %pool, reason, "connection lost");
                redirect = None;
                if healthy {
                    backoff.reset();
                }
                // A session that delivered work: retry the same pool first.
                if !mined {
                    index = (index + 1) % cfg.pools.len();
                }
                backoff.next_wait()
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_secs(4));
        let waits: Vec<f64> = (0..8).map(|_| b.next_wait().as_secs_f64()).collect();
        assert!(waits[0] >= 0.125 && waits[0] <= 0.375);
        assert!(waits.iter().all(|w| *w <= 6.0));
        assert!(waits[7] >= 2.0, "reaches the cap: {waits:?}");
        b.reset();
        assert!(b.next_wait() <= Duration::from_millis(375));
    }
}
