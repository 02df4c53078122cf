//! Wiring: choose the kernel, start the mining threads, the Stratum client, the status line
//! and (optionally) `/metrics`; stop them all on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::failover::{self, FailoverConfig};
use crate::client::session::SessionConfig;
use crate::config::Config;
use crate::miner::Miner;
use crate::search::{self, calibrate, Kernel};
use crate::status::Status;
use crate::work::WorkBoard;

pub struct Running {
    pub status: Arc<Status>,
    pub kernel: &'static dyn Kernel,
    pub metrics: Option<SocketAddr>,
    shutdown: CancellationToken,
    client: JoinHandle<()>,
    miner: Miner,
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.client.await;
        tokio::task::spawn_blocking(move || self.miner.stop())
            .await
            .expect("miner threads stop");
    }
}

/// The kernel to run: forced by name, or the fastest this CPU measures.
pub fn pick_kernel(name: &str) -> anyhow::Result<&'static dyn Kernel> {
    if name == "auto" {
        let m = calibrate::choose();
        tracing::info!(
            kernel = m.kernel.name(),
            mhs_per_thread = format!("{:.2}", m.hashes_per_sec / 1e6),
            cpu = %search::cpu_description(),
            "kernel chosen by measurement"
        );
        return Ok(m.kernel);
    }
    match search::by_name(name) {
        Ok(k) => {
            tracing::info!(kernel = k.name(), "kernel forced by --kernel");
            Ok(k)
        }
        Err(e) => bail!("--kernel: {e}"),
    }
}

pub async fn start(cfg: &Config) -> anyhow::Result<Running> {
    if cfg.pools.is_empty() {
        bail!("no pool: give -o stratum+tcp://host:port (or MINER_POOL)");
    }
    if cfg.login().is_empty() {
        bail!("no login: give -u ADDRESS.rig (or WALLET_ADDRESS)");
    }
    let placement = cfg.placement();
    placement.check().map_err(anyhow::Error::msg)?;
    let kernel = pick_kernel(&cfg.kernel)?;
    let threads = cfg.thread_count();
    let board = WorkBoard::new();
    let status = Arc::new(Status::default());
    let (tx, rx) = tokio::sync::mpsc::channel(crate::miner::SHARE_QUEUE);
    let miner = Miner::start(
        threads,
        kernel,
        &placement,
        board.clone(),
        status.clone(),
        tx,
    );
    tracing::info!(
        threads,
        kernel = kernel.name(),
        cpu_priority = %placement.priority,
        cpu_affinity = %placement.affinity.as_ref().map_or("any".to_owned(), |a| a.to_string()),
        "mining threads started"
    );
    let tls = tls_config(cfg)?;
    let shutdown = CancellationToken::new();
    let client = tokio::spawn(failover::run(
        FailoverConfig {
            pools: cfg.pools.clone(),
            retry_max: cfg.retry_max,
            failback_interval: cfg.failback_interval,
            session: SessionConfig {
                login: cfg.login(),
                password: cfg.password.clone(),
                version_rolling: !cfg.no_version_rolling,
                suggest_difficulty: cfg.suggest_difficulty,
                extranonce_subscribe: cfg.extranonce_subscribe,
                timeout: cfg.timeout,
                idle_timeout: cfg.idle_timeout,
                allow_redirect: cfg.allow_redirect.clone(),
                max_share_rate: cfg.max_share_rate,
                tls,
            },
        },
        board,
        status.clone(),
        rx,
        shutdown.clone(),
    ));
    {
        let (status, shutdown, every) = (status.clone(), shutdown.clone(), cfg.status_interval);
        tokio::spawn(async move {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = t.tick() => tracing::info!("{}", status.line()),
                }
            }
        });
    }
    // Keep hashrate samples flowing even while disconnected.
    {
        let (status, shutdown) = (status.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = t.tick() => status.sample(),
                }
            }
        });
    }
    let metrics = match cfg.metrics {
        Some(addr) => Some(
            crate::metrics::serve(
                addr,
                status.clone(),
                kernel.name(),
                threads,
                shutdown.clone(),
            )
            .await?,
        ),
        None => None,
    };
    Ok(Running {
        status,
        kernel,
        metrics,
        shutdown,
        client,
        miner,
    })
}

/// How `stratum+ssl://` pools are trusted: the pinned certificate, else the system's roots
/// (`None` when no pool is reached over TLS).
fn tls_config(cfg: &Config) -> anyhow::Result<Option<Arc<rustls::ClientConfig>>> {
    if !cfg.pools.iter().any(|p| p.tls) {
        return Ok(None);
    }
    let trust = match &cfg.tls_pin {
        Some(path) => protocol::tls::ServerTrust::pinned_from(path)?,
        None => protocol::tls::ServerTrust::SystemRoots,
    };
    Ok(Some(protocol::tls::client_config(&trust)?))
}
