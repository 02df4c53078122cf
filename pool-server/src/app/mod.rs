//! Wiring: each concern starts from its own config group (store, chain, jobs, p2p, rewards,
//! mining and Stratum, HTTP: one file each here), and this file connects them and owns the
//! shutdown path.
//!
//! Shutdown order matters for "no accepted share is lost": stop accepting, tell every miner
//! to reconnect and end the sessions, let the block path finish, then flush the store (to the
//! database, or the spool when it is away).

mod chain;
mod edge;
mod gauges;
mod http;
mod jobs;
mod notify;
mod p2p;
mod rewards;
mod store;
mod stratum;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::chain::payout_script;
use crate::blocks::BlockPath;
use crate::chain::embedded::EmbeddedChain;
use crate::config::Config;
use crate::edge::registry::Addresses;
use crate::edge::Edge;
use crate::jobs::JobFeed;
use crate::metrics::Metrics;
use crate::mining::SessionDirectory;
use crate::net::BanList;
use crate::p2p::manager::Node;
use crate::store::{Backend, Store};
use crate::stratum::session::Farewell;

/// How long sessions get to say goodbye on shutdown.
const SESSION_DRAIN: Duration = Duration::from_secs(10);

/// A started pool.
pub struct Running {
    /// Bound Stratum addresses, in `--stratum` order (useful with port 0).
    pub stratum: Vec<SocketAddr>,
    /// The bound `--p2p-listen` address.
    pub p2p: Option<SocketAddr>,
    pub http: SocketAddr,
    pub store: Backend,
    pub chain: Option<Arc<EmbeddedChain>>,
    pub jobs: JobFeed,
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    done: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Begin a graceful shutdown.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Wait until the pool has stopped (after [`Running::shutdown`]).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.done.await.context("pool task panicked")?
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown();
        self.wait().await
    }
}

pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    let started = Instant::now();
    warn_on_descriptor_limit(&cfg);
    let metrics = Arc::new(Metrics::new());
    let shutdown = CancellationToken::new();
    let store = store::open(&cfg, &metrics, &shutdown).await?;
    let payout = payout_script(&cfg)?;
    let templates = chain::open(&cfg, &store, &metrics, &shutdown).await?;
    let reward_rules = rewards::config(&cfg);
    let work = jobs::start(&cfg, payout, &store, &templates, &reward_rules, &shutdown).await?;
    let (block_tx, block_rx) = mpsc::channel(64);
    let blocks = BlockPath::new(
        templates.source.clone(),
        templates.chain.clone(),
        store.handle(),
        work.coinbase_payouts.then(|| store.backend.clone()),
        metrics.chain.clone(),
    );
    let block_path = blocks.clone().spawn(block_rx);
    let p2p = p2p::start(&cfg, &templates, &blocks, &metrics, &shutdown).await?;
    let stats = store::warm_stats(&store).await;
    let rewards = rewards::start(&cfg, reward_rules, &store, &templates, &metrics, &shutdown);
    let bans = Arc::new(BanList::new(
        cfg.stratum.ban_duration,
        cfg.stratum.ban_threshold,
    ));
    let (key_tx, key_rx) = mpsc::channel(1024);
    let extranonces = stratum::extranonces(&cfg, &work);
    let edge = edge::join(&cfg, &extranonces, &bans).await?;
    let mining = stratum::mining_context(
        &cfg,
        &work,
        stratum::Shared {
            store: &store,
            stats: &stats,
            metrics: &metrics,
            bans: &bans,
            extranonces,
            directory: edge
                .as_ref()
                .map(|e| e.directory.clone() as Arc<dyn SessionDirectory>),
        },
        stratum::Outlets {
            blocks: block_tx,
            key_claims: key_tx,
        },
    )?;
    let (sessions_stop, farewell) = (CancellationToken::new(), Farewell::default());
    let stratum = stratum::listen(
        &cfg,
        mining.clone(),
        &shutdown,
        &sessions_stop,
        farewell.clone(),
    )
    .await?;
    let alerts = notify::start(
        &cfg,
        &stats,
        &store.backend,
        &metrics,
        key_rx,
        edge.as_ref().map(|e| e.directory.clone()),
        &shutdown,
    )?;
    let readable = http::Readable {
        store: &store,
        stats: &stats,
        metrics: &metrics,
        bans: &bans,
        jobs: &work.feed,
        templates: &templates,
        p2p: &p2p,
        alerts: &alerts,
        edge: &edge,
        started,
    };
    let (http_addr, http_task) = http::serve(&cfg, readable, &shutdown).await?;
    if let Some(e) = &edge {
        let advertised = cfg.edge.edge_advertise.clone();
        let at = Addresses {
            stratum: advertised.unwrap_or_else(|| stratum.addrs[0].to_string()),
            http: http_addr.to_string(),
        };
        e.run(at, metrics.clone());
    }
    gauges::spawn(
        metrics.clone(),
        stats,
        work.feed.clone(),
        mining,
        shutdown.clone(),
    );
    let running = Running {
        stratum: stratum.addrs,
        p2p: p2p.as_ref().and_then(|n| n.listening),
        http: http_addr,
        store: store.backend.clone(),
        chain: templates.chain,
        jobs: work.feed,
        metrics,
        shutdown: shutdown.clone(),
        done: tokio::spawn(stop_in_order(
            shutdown,
            Stopping {
                sessions: stratum.sessions,
                sessions_stop,
                farewell,
                edge,
                p2p,
                blocks,
                block_path,
                rewards,
                store,
                http: http_task,
            },
        )),
    };
    Ok(running)
}

/// Warn when the descriptor limit cannot hold every connection the caps allow.
fn warn_on_descriptor_limit(cfg: &Config) {
    let descriptors = crate::http::serve::raise_descriptor_limit();
    let wanted = (cfg.stratum.max_connections as u64)
        .saturating_add(cfg.http.http_max_connections as u64)
        .saturating_add(256);
    if descriptors < wanted {
        tracing::warn!(
            limit = descriptors,
            wanted,
            "the descriptor limit is below --max-connections + --http-max-connections + 256: \
             raise the hard limit (LimitNOFILE=, ulimit -Hn) or lower the caps"
        );
    }
}

/// What shutdown waits for, in the order it waits.
struct Stopping {
    sessions: TaskTracker,
    /// Ends the sessions, once the drain knows where to send their miners.
    sessions_stop: CancellationToken,
    farewell: Farewell,
    edge: Option<Arc<Edge>>,
    p2p: Option<Arc<Node>>,
    blocks: Arc<BlockPath>,
    block_path: JoinHandle<()>,
    rewards: rewards::Rewards,
    store: Store,
    http: JoinHandle<()>,
}

/// At shutdown: end the sessions (each tells its miner to reconnect: to another edge when
/// this is one of several, after their sessions are parked where that edge finds them), then
/// the peers, then
/// the block path (once no session can send it a block), the reward tasks, and last the store.
async fn stop_in_order(shutdown: CancellationToken, s: Stopping) -> anyhow::Result<()> {
    shutdown.cancelled().await;
    if let Some(edge) = &s.edge {
        *s.farewell.write() = edge.drain().await;
    }
    tracing::info!("shutting down: telling miners to reconnect");
    s.sessions_stop.cancel();
    s.sessions.close();
    if tokio::time::timeout(SESSION_DRAIN, s.sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!("some sessions did not end in time");
    }
    if let Some(edge) = &s.edge {
        edge.leave().await;
    }
    if let Some(p2p) = &s.p2p {
        if tokio::time::timeout(Duration::from_secs(5), p2p.wait())
            .await
            .is_err()
        {
            tracing::warn!("some peer connections did not end in time");
        }
    }
    drop(s.p2p);
    drop(s.blocks);
    if tokio::time::timeout(Duration::from_secs(10), s.block_path)
        .await
        .is_err()
    {
        tracing::warn!("block path did not finish in time");
    }
    let _ = s.rewards.ledger.await;
    if let Some(p) = s.rewards.payouts {
        let _ = p.await;
    }
    s.store.close().await;
    let _ = s.http.await;
    tracing::info!("stopped");
    Ok(())
}
