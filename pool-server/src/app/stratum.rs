//! Start-up of mining: the context every channel shares, and the Stratum V1 listeners that
//! open a session (driving a channel) per connection.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::jobs::Work;
use crate::blocks::FoundBlock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::mining::account::AccountPolicy;
use crate::mining::extranonce::ExtranonceAllocator;
use crate::mining::resume::ResumeTable;
use crate::mining::vardiff::VardiffConfig;
use crate::mining::{MiningContext, SessionDirectory};
use crate::net::tls::TlsTerminator;
use crate::net::{BanList, ConnectionLimits};
use crate::stats::Stats;
use crate::store::Store;
use crate::stratum::server;
use crate::stratum::session::{Farewell, SessionContext};

/// What every channel shares, from the Stratum and vardiff groups.
/// Where channels send what leaves the share path: found blocks, account keys.
pub struct Outlets {
    pub blocks: mpsc::Sender<FoundBlock>,
    pub key_claims: mpsc::Sender<crate::mining::account::KeyClaim>,
}

/// The extranonce1 allocator (on an edge, its id begins every value).
pub fn extranonces(cfg: &Config, work: &Work) -> Arc<ExtranonceAllocator> {
    ExtranonceAllocator::on_edge(
        cfg.stratum.extranonce1_size as usize,
        cfg.edge.edge_id,
        work.feed.tip(),
    )
}

/// The sinks and shared owners a channel reaches.
pub struct Shared<'a> {
    pub store: &'a Store,
    pub stats: &'a Arc<Stats>,
    pub metrics: &'a Arc<Metrics>,
    pub bans: &'a Arc<BanList>,
    pub extranonces: Arc<ExtranonceAllocator>,
    pub directory: Option<Arc<dyn SessionDirectory>>,
}

pub fn mining_context(
    cfg: &Config,
    work: &Work,
    shared: Shared<'_>,
    outlets: Outlets,
) -> anyhow::Result<Arc<MiningContext>> {
    let Shared {
        store,
        stats,
        metrics,
        bans,
        extranonces,
        directory,
    } = shared;
    let (s, v) = (&cfg.stratum, &cfg.vardiff);
    Ok(Arc::new(MiningContext {
        extranonce2_size: s.extranonce2_size as usize,
        version_mask: s.version_mask,
        vardiff: VardiffConfig {
            target_interval: v.vardiff_target,
            retarget_window: v.vardiff_retarget,
            variance: v.vardiff_variance,
            min: v.vardiff_min,
            max: v.vardiff_max,
        },
        reissue_grace: s.reissue_grace,
        durable_acks: cfg.store.durable_acks,
        accounts: AccountPolicy::new(cfg.rewards.network, &s.account_pattern)?,
        jobs: work.feed.clone(),
        job_ids: work.ids.clone(),
        resume: ResumeTable::new(s.resume_window, s.max_connections),
        directory,
        store: store.handle(),
        stats: stats.clone(),
        metrics: metrics.clone(),
        bans: bans.clone(),
        extranonces,
        blocks: outlets.blocks,
        key_claims: outlets.key_claims,
        channel_ids: AtomicU64::new(rand::random::<u32>() as u64),
    }))
}

/// The Stratum listeners, bound and serving.
pub struct Listening {
    /// Bound addresses, in `--stratum` order.
    pub addrs: Vec<SocketAddr>,
    /// Every session; closed and awaited at shutdown.
    pub sessions: TaskTracker,
}

/// Listen until `shutdown`; sessions end at `sessions_stop` (cancelled once the drain
/// knows where to send their miners: `farewell`).
pub async fn listen(
    cfg: &Config,
    mining: Arc<MiningContext>,
    shutdown: &CancellationToken,
    sessions_stop: &CancellationToken,
    farewell: Farewell,
) -> anyhow::Result<Listening> {
    let s = &cfg.stratum;
    let tls = match (&s.tls_cert, &s.tls_key) {
        (Some(cert), Some(key)) => {
            let t = TlsTerminator::load(cert, key)?;
            t.reload_on_sighup()?;
            tracing::info!(cert = %cert.display(), "Stratum ports also speak TLS");
            Some(t)
        }
        _ => None,
    };
    let ctx = Arc::new(SessionContext {
        mining,
        farewell,
        tls,
        idle_timeout: s.idle_timeout,
        auth_timeout: s.auth_timeout,
        max_line: s.max_line,
    });
    let limits = ConnectionLimits::new(s.max_connections, s.max_connections_per_ip);
    let sessions = TaskTracker::new();
    let proxy_from: Arc<[_]> = s.proxy_protocol_from.clone().into();
    if !proxy_from.is_empty() {
        let balancers: Vec<String> = proxy_from.iter().map(ToString::to_string).collect();
        tracing::info!(balancers = %balancers.join(","), "PROXY protocol headers read from these balancers");
    }
    let mut addrs = Vec::new();
    for l in &s.listeners {
        let listener = TcpListener::bind(l.addr)
            .await
            .with_context(|| format!("binding Stratum listener {}", l.addr))?;
        let addr = listener.local_addr()?;
        let diff = l.start_difficulty.unwrap_or(s.start_difficulty);
        tracing::info!(addr = %addr, start_difficulty = %diff, "Stratum listening");
        addrs.push(addr);
        tokio::spawn(server::serve(
            listener,
            diff,
            ctx.clone(),
            server::Admission {
                limits: limits.clone(),
                proxy_from: proxy_from.clone(),
            },
            shutdown.clone(),
            sessions_stop.clone(),
            sessions.clone(),
        ));
    }
    Ok(Listening { addrs, sessions })
}
