//! Wiring: build every part from the config, start the listeners, and own the shutdown path.
//!
//! Shutdown order matters for "no accepted share is lost": stop accepting, tell every miner
//! to reconnect and end the sessions, let the block path finish, then flush the store (to the
//! database, or the spool when it is away).

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bitcoin::{Address, ScriptBuf};
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blocks::BlockPath;
use crate::chain::block_file::BlockFile;
use crate::chain::coinbase::CoinbaseBuilder;
use crate::chain::embedded::EmbeddedChain;
use crate::chain::genesis::network_magic;
use crate::chain::node_rpc::NodeSource;
use crate::chain::retarget::RetargetParams;
use crate::chain::rpc::{NodeConfig, RpcClient};
use crate::chain::rules::ChainParams;
use crate::chain::TemplateSource;
use crate::config::Config;
use crate::http::directory;
use crate::http::refreshed::Refreshed;
use crate::http::{self, ApiState};
use crate::jobs::{CoinbasePayouts, JobBuilder, JobFeed, JobIds};
use crate::metrics::Metrics;
use crate::mining::account::AccountPolicy;
use crate::mining::extranonce::ExtranonceAllocator;
use crate::mining::resume::ResumeTable;
use crate::mining::vardiff::VardiffConfig;
use crate::mining::MiningContext;
use crate::net::bans::BanList;
use crate::net::ConnectionLimits;
use crate::p2p::manager::{Node, P2pConfig};
use crate::p2p::peer::Liveness;
use crate::rewards::coinbase_plan::PlanSettings;
use crate::rewards::ledger::Ledger;
use crate::rewards::payout::WalletPayouts;
use crate::rewards::planner::Planner;
use crate::rewards::{PayoutMethod, RewardConfig};
use crate::stats::Stats;
use crate::store::{retention, rollup, Backend, BlockRecord, Store, StoreEvent, StoreOptions};
use crate::stratum::server;
use crate::stratum::session::SessionContext;

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

pub fn payout_script(cfg: &Config) -> anyhow::Result<ScriptBuf> {
    if let Some(addr) = &cfg.rewards.payout_address {
        let a = Address::from_str(addr)
            .with_context(|| format!("--payout-address {addr:?} is not an address"))?
            .require_network(cfg.rewards.network)
            .with_context(|| {
                format!("--payout-address is not a {} address", cfg.rewards.network)
            })?;
        return Ok(a.script_pubkey());
    }
    if let Some(script) = &cfg.rewards.payout_script {
        let bytes = hex::decode(script).context("--payout-script must be hex")?;
        return Ok(ScriptBuf::from_bytes(bytes));
    }
    if cfg.rewards.payout_method != PayoutMethod::Coinbase {
        tracing::warn!(
            "no --payout-address or --payout-script: the coinbase pays OP_TRUE (anyone can spend)"
        );
    }
    Ok(ScriptBuf::from_bytes(vec![0x51]))
}

pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    let started = Instant::now();
    let descriptors = http::serve::raise_descriptor_limit();
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
    let metrics = Arc::new(Metrics::new());
    let store = Store::open(
        StoreOptions {
            url: &cfg.store.database_url,
            spool_dir: &cfg.store.spool_dir,
            batch: cfg.store.store_batch,
            flush: cfg.store.store_flush,
            queue: cfg.store.store_queue,
            connect_patience: Duration::from_secs(5),
        },
        metrics.clone(),
    )
    .await?;
    tracing::info!(backend = store.backend.kind(), "share store ready");

    let payout = payout_script(&cfg)?;
    let shutdown = CancellationToken::new();
    let node_config = cfg.node.node_rpc_url.as_ref().map(|url| NodeConfig {
        url: url.clone(),
        user: cfg.node.node_rpc_user.clone(),
        password: cfg.node.node_rpc_password.clone(),
        cookie_file: cfg.node.node_rpc_cookie.clone(),
        poll: cfg.node.node_poll,
        refresh: cfg.node.node_template_refresh,
        max_age: cfg.node.node_template_max_age,
        zmq: cfg.node.node_zmq.clone(),
        longpoll: !cfg.node.node_no_longpoll,
    });
    let (source, chain): (Arc<dyn TemplateSource>, Option<Arc<EmbeddedChain>>) = match &node_config
    {
        Some(node_config) => {
            let node = NodeSource::start(
                node_config.clone(),
                metrics.clone(),
                shutdown.clone(),
                Duration::from_secs(30),
            )
            .await?;
            (node, None)
        }
        None => {
            let chain = open_embedded_chain(&cfg, &store).await?;
            (chain.clone(), Some(chain))
        }
    };

    let coinbase = CoinbaseBuilder::new(
        payout,
        &cfg.rewards.pool_tag,
        cfg.stratum.extranonce1_size as usize + cfg.stratum.extranonce2_size as usize,
    );
    let job_ids = JobIds::default();
    let reward_cfg = RewardConfig {
        scheme: cfg.rewards.reward_scheme,
        pplns_window: cfg.rewards.pplns_window,
        fee_bps: cfg.rewards.pool_fee.0,
        maturity: cfg.rewards.maturity,
        credit_delay: cfg.rewards.credit_delay,
        share_retention: cfg.store.share_retention,
    };
    let mut job_builder = JobBuilder::new(coinbase, job_ids.clone());
    let coinbase_payouts = cfg.rewards.payout_method == PayoutMethod::Coinbase;
    if coinbase_payouts {
        let fee_address = cfg.rewards.pool_fee_address.as_deref().unwrap_or_default();
        let pool_script = Address::from_str(fee_address)
            .with_context(|| format!("--pool-fee-address {fee_address:?} is not an address"))?
            .require_network(cfg.rewards.network)
            .with_context(|| {
                format!(
                    "--pool-fee-address is not a {} address",
                    cfg.rewards.network
                )
            })?
            .script_pubkey();
        let plans = Planner::new(
            store.backend.clone(),
            source.templates(),
            source.kind(),
            reward_cfg.clone(),
            cfg.rewards.network,
            cfg.rewards.plan_interval,
            cfg.store.store_flush + Duration::from_secs(1),
        )
        .spawn(shutdown.clone())
        .await;
        tracing::info!(
            dust_limit = %cfg.rewards.dust_limit,
            max_outputs = cfg.rewards.max_coinbase_outputs,
            "coinbase payouts on: every job pays the window's accounts"
        );
        job_builder = job_builder.paying_in_coinbase(CoinbasePayouts {
            plans,
            settings: PlanSettings {
                fee_bps: cfg.rewards.pool_fee.0,
                dust_sats: cfg.rewards.dust_limit.to_sat(),
                max_outputs: cfg.rewards.max_coinbase_outputs as usize,
                pool_script,
            },
            rebuild_bps: cfg.rewards.coinbase_rebuild_change.0,
        });
    }
    let jobs = job_builder.spawn(
        source.templates(),
        cfg.stratum.job_refresh,
        shutdown.clone(),
    );
    let (block_tx, block_rx) = mpsc::channel(64);
    let blocks = BlockPath::new(
        source.clone(),
        chain.clone(),
        store.handle(),
        coinbase_payouts.then(|| store.backend.clone()),
        metrics.clone(),
    );
    let block_path = blocks.clone().spawn(block_rx);
    let p2p = match &chain {
        Some(chain) if cfg.p2p.p2p_listen.is_some() || !cfg.p2p.peers.is_empty() => Some(
            Node::start(
                p2p_config(&cfg).await?,
                chain.clone(),
                blocks.clone(),
                metrics.clone(),
                shutdown.child_token(),
            )
            .await?,
        ),
        _ => None,
    };

    let stats = Arc::new(Stats::new());
    // A restart leaves no hole: the windows (the last hour of every worker) and the pool's
    // day of history come back from the rollups.
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
    // Rewards: the ledger credits found blocks and follows their confirmations; wallet
    // payouts pay what is due.
    let ledger = Ledger {
        backend: store.backend.clone(),
        source: source.clone(),
        cfg: reward_cfg,
        metrics: metrics.clone(),
    }
    .spawn(shutdown.clone());
    let payouts = match (cfg.rewards.payout_method, &node_config) {
        (PayoutMethod::Wallet, Some(node_config)) => {
            let rpc = RpcClient::new(node_config.clone());
            let wallet = match &cfg.rewards.node_wallet {
                Some(name) => rpc.for_wallet(name),
                None => rpc,
            };
            tracing::info!(
                interval = ?cfg.rewards.payout_interval,
                threshold = %cfg.rewards.payout_threshold,
                "wallet payouts on"
            );
            Some(
                WalletPayouts {
                    backend: store.backend.clone(),
                    wallet,
                    network: cfg.rewards.network,
                    interval: cfg.rewards.payout_interval,
                    threshold_sats: cfg.rewards.payout_threshold.to_sat() as i64,
                    metrics: metrics.clone(),
                }
                .spawn(shutdown.clone()),
            )
        }
        _ => None,
    };
    tokio::spawn(retention::run(
        store.backend.clone(),
        retention::Policy {
            shares: cfg.store.share_retention,
            minutes: cfg.store.minute_rollup_retention,
            hours: cfg.store.rollup_retention,
        },
        shutdown.clone(),
    ));
    let bans = Arc::new(BanList::new(
        cfg.stratum.ban_duration,
        cfg.stratum.ban_threshold,
    ));
    let mining = Arc::new(MiningContext {
        extranonce2_size: cfg.stratum.extranonce2_size as usize,
        version_mask: cfg.stratum.version_mask,
        vardiff: VardiffConfig {
            target_interval: cfg.vardiff.vardiff_target,
            retarget_window: cfg.vardiff.vardiff_retarget,
            variance: cfg.vardiff.vardiff_variance,
            min: cfg.vardiff.vardiff_min,
            max: cfg.vardiff.vardiff_max,
        },
        reissue_grace: cfg.stratum.reissue_grace,
        accounts: AccountPolicy::new(cfg.rewards.network, &cfg.stratum.account_pattern)?,
        jobs: jobs.clone(),
        job_ids,
        resume: ResumeTable::new(cfg.stratum.resume_window, cfg.stratum.max_connections),
        store: store.handle(),
        stats: stats.clone(),
        metrics: metrics.clone(),
        bans: bans.clone(),
        extranonces: ExtranonceAllocator::new(cfg.stratum.extranonce1_size as usize, jobs.tip()),
        blocks: block_tx,
        channel_ids: AtomicU64::new(rand::random::<u32>() as u64),
    });
    let ctx = Arc::new(SessionContext {
        mining: mining.clone(),
        idle_timeout: cfg.stratum.idle_timeout,
        auth_timeout: cfg.stratum.auth_timeout,
        max_line: cfg.stratum.max_line,
    });

    let limits = ConnectionLimits::new(
        cfg.stratum.max_connections,
        cfg.stratum.max_connections_per_ip,
    );
    let tracker = TaskTracker::new();
    let mut stratum_addrs = Vec::new();
    for l in &cfg.stratum.listeners {
        let listener = TcpListener::bind(l.addr)
            .await
            .with_context(|| format!("binding Stratum listener {}", l.addr))?;
        let addr = listener.local_addr()?;
        let diff = l.start_difficulty.unwrap_or(cfg.stratum.start_difficulty);
        tracing::info!(addr = %addr, start_difficulty = %diff, "Stratum listening");
        stratum_addrs.push(addr);
        tokio::spawn(server::serve(
            listener,
            diff,
            ctx.clone(),
            limits.clone(),
            shutdown.clone(),
            tracker.clone(),
        ));
    }

    let api = Arc::new(ApiState {
        stats: stats.clone(),
        store: store.backend.clone(),
        metrics: metrics.clone(),
        bans: bans.clone(),
        jobs: jobs.clone(),
        chain: chain.clone(),
        p2p: p2p.clone(),
        source: source.kind(),
        api_token: cfg.http.api_token.clone(),
        network: cfg.rewards.network,
        started,
        directory: Arc::new(
            Refreshed::new(directory::FRESH, directory::STALE)
                .counting(metrics.view_builds.with_label_values(&["workers"])),
        ),
        balances: Arc::new(
            Refreshed::new(directory::FRESH, directory::STALE)
                .counting(metrics.view_builds.with_label_values(&["balances"])),
        ),
        metrics_text: Arc::new(
            Refreshed::new(Duration::ZERO, Duration::ZERO)
                .counting(metrics.view_builds.with_label_values(&["metrics"])),
        ),
    });
    let http_listener = TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("binding HTTP {}", cfg.http.listen))?;
    let http_addr = http_listener.local_addr()?;
    tracing::info!(addr = %http_addr, "HTTP listening (API, dashboard, /metrics)");
    let http_task = tokio::spawn(http::serve::serve(
        http_listener,
        http::router(api),
        ConnectionLimits::new(
            cfg.http.http_max_connections as usize,
            cfg.http.http_max_connections_per_ip as usize,
        ),
        cfg.http.http_header_timeout,
        shutdown.clone(),
    ));

    // Keep the derived gauges fresh between scrapes.
    {
        let (metrics, stats, jobs, bans, mining, shutdown) = (
            metrics.clone(),
            stats.clone(),
            jobs.clone(),
            bans.clone(),
            mining.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            let mut t = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = t.tick() => {
                        // A walk over every worker: off the threads sessions run on.
                        let (m, st, j, banned) = (metrics.clone(), stats.clone(), jobs.clone(), bans.len());
                        let _ = tokio::task::spawn_blocking(move || m.refresh(&st, &j, banned)).await;
                        mining.resume.expire();
                        metrics.sessions_parked.set(mining.resume.len() as i64);
                    }
                }
            }
        });
    }

    let p2p_addr = p2p.as_ref().and_then(|n| n.listening);
    let backend = store.backend.clone();
    let done_shutdown = shutdown.clone();
    let done = tokio::spawn(async move {
        done_shutdown.cancelled().await;
        tracing::info!("shutting down: telling miners to reconnect");
        tracker.close();
        if tokio::time::timeout(SESSION_DRAIN, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sessions did not end in time");
        }
        drop(ctx);
        if let Some(p2p) = &p2p {
            if tokio::time::timeout(Duration::from_secs(5), p2p.wait())
                .await
                .is_err()
            {
                tracing::warn!("some peer connections did not end in time");
            }
        }
        drop(p2p);
        drop(blocks);
        if tokio::time::timeout(Duration::from_secs(10), block_path)
            .await
            .is_err()
        {
            tracing::warn!("block path did not finish in time");
        }
        let _ = ledger.await;
        if let Some(p) = payouts {
            let _ = p.await;
        }
        store.close().await;
        let _ = http_task.await;
        tracing::info!("stopped");
        Ok(())
    });

    Ok(Running {
        stratum: stratum_addrs,
        p2p: p2p_addr,
        http: http_addr,
        store: backend,
        chain,
        jobs,
        metrics,
        shutdown,
        done,
    })
}

/// The P2P settings, with every `--peer` resolved (one that does not resolve is left out, said
/// so in the log: the others may still be reachable).
async fn p2p_config(cfg: &Config) -> anyhow::Result<P2pConfig> {
    let mut seeds = Vec::new();
    for peer in &cfg.p2p.peers {
        match tokio::net::lookup_host(peer.as_str()).await {
            Ok(addrs) => seeds.extend(addrs),
            Err(e) => {
                tracing::error!(peer = %peer, error = %e, "--peer does not resolve; left out")
            }
        }
    }
    Ok(P2pConfig {
        listen: cfg.p2p.p2p_listen,
        seeds,
        max_peers: cfg.p2p.max_peers as usize,
        max_outbound: cfg.p2p.max_outbound as usize,
        max_inbound_per_ip: cfg.p2p.max_inbound_per_ip as usize,
        handshake_timeout: cfg.p2p.p2p_handshake_timeout,
        liveness: Liveness {
            ping_every: cfg.p2p.p2p_ping_interval,
            pong_within: cfg.p2p.p2p_ping_interval * 2,
        },
        ban_duration: cfg.stratum.ban_duration,
    })
}

/// Resume the embedded chain from the store, or start a new one and record its genesis.
async fn open_embedded_chain(cfg: &Config, store: &Store) -> anyhow::Result<Arc<EmbeddedChain>> {
    let genesis_target = cfg
        .chain
        .genesis_bits
        .to_target()
        .expect("checked by the parser");
    let regtest_limit = protocol::CompactTarget::from_consensus(0x207fffff)
        .to_target()
        .expect("valid");
    let params = ChainParams {
        network: cfg.chain.p2p_network.clone(),
        genesis_bits: cfg.chain.genesis_bits,
        retarget: RetargetParams {
            interval: cfg.chain.retarget_interval,
            block_time_secs: cfg.chain.block_time.as_secs().max(1),
            pow_limit: genesis_target.max(regtest_limit),
        },
    };
    std::fs::create_dir_all(&cfg.store.spool_dir)
        .with_context(|| format!("creating {}", cfg.store.spool_dir.display()))?;
    // The chain file is the node's own store of every block (it resumes while the database is
    // away); the database is read for what the file lacks (a file lost, or older than it).
    let (file, from_file) = BlockFile::open(&cfg.store.spool_dir.join("embedded.blocks"))
        .context("opening the embedded chain's block file")?;
    let file_height = from_file.iter().map(|b| b.0).max();
    // A file of the earlier layout kept only the last blocks: it cannot rebuild the tree.
    let file_whole = from_file.first().is_some_and(|b| b.0 == 0);
    let from_db = if store.connected() {
        let tip = store.backend.load_chain("embedded", 1).await?;
        if tip.first().map(|b| b.0) > file_height || (!from_file.is_empty() && !file_whole) {
            store
                .backend
                .load_chain("embedded", i64::MAX)
                .await?
                .into_iter()
                .map(|(h, raw)| {
                    bitcoin::consensus::deserialize::<bitcoin::Block>(&raw)
                        .with_context(|| format!("stored block at height {h} does not decode"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?
        } else {
            Vec::new()
        }
    } else if from_file.is_empty() {
        anyhow::bail!(
            "the share database is unreachable and there is no chain file ({}) to resume the \
             embedded chain from: start the database first, so the chain is not started anew",
            file.path().display()
        )
    } else if !file_whole {
        anyhow::bail!(
            "the share database is unreachable and the chain file ({}) holds only the last \
             blocks (the layout of an earlier version): start once with the database \
             reachable, so the chain is rebuilt from it",
            file.path().display()
        )
    } else {
        tracing::warn!("share database unreachable: embedded chain resumed from its file");
        Vec::new()
    };
    let (chain, genesis) = EmbeddedChain::open(params, file, from_file, from_db)?;
    if let Some(g) = genesis {
        tracing::info!(
            network = %cfg.chain.p2p_network,
            genesis = %g.block_hash(),
            bits = %cfg.chain.genesis_bits,
            magic = %network_magic(g.block_hash()),
            "new embedded chain"
        );
        store
            .handle()
            .record(StoreEvent::Block(BlockRecord {
                hash: g.block_hash().to_string(),
                height: 0,
                prev_hash: g.header.prev_blockhash.to_string(),
                chain: "embedded".into(),
                worker: None,
                network_difficulty: genesis_target.difficulty().as_f64(),
                status: "accepted".into(),
                detail: Some("genesis".into()),
                raw: bitcoin::consensus::serialize(&g),
                found_at: Utc::now(),
                coinbase_plan: None,
            }))
            .await;
    } else {
        let (h, hash) = chain.tip();
        tracing::info!(height = h, tip = %hash, "embedded chain resumed");
    }
    Ok(chain)
}
