//! Start-up of the template source: a node when `--node-rpc-url` is set, else the embedded
//! chain, resumed from its block file and the database (or started at its genesis).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bitcoin::{Address, ScriptBuf};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::chain::block_file::BlockFile;
use crate::chain::branch::{
    default_max_side_blocks, BranchRules, DEFAULT_MARGIN_BLOCKS, DEFAULT_MAX_SIBLINGS,
    DEFAULT_MAX_SIDE_BYTES,
};
use crate::chain::embedded::EmbeddedChain;
use crate::chain::genesis::network_magic;
use crate::chain::min_work;
use crate::chain::node_rpc::NodeSource;
use crate::chain::retarget::RetargetParams;
use crate::chain::rpc::NodeConfig;
use crate::chain::rules::ChainParams;
use crate::chain::TemplateSource;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::rewards::PayoutMethod;
use crate::store::{BlockRecord, Store, StoreEvent};

/// Where work comes from.
pub struct Templates {
    pub source: Arc<dyn TemplateSource>,
    /// The embedded chain, when it is the source.
    pub chain: Option<Arc<EmbeddedChain>>,
    /// How to reach the node, when one is the source (wallet payouts use it too).
    pub node: Option<NodeConfig>,
}

pub async fn open(
    cfg: &Config,
    store: &Store,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Templates> {
    let n = &cfg.node;
    let node = n.node_rpc_url.as_ref().map(|url| NodeConfig {
        url: url.clone(),
        user: n.node_rpc_user.clone(),
        password: n.node_rpc_password.clone(),
        cookie_file: n.node_rpc_cookie.clone(),
        poll: n.node_poll,
        refresh: n.node_template_refresh,
        max_age: n.node_template_max_age,
        zmq: n.node_zmq.clone(),
        longpoll: !n.node_no_longpoll,
    });
    let (source, chain): (Arc<dyn TemplateSource>, _) = match &node {
        Some(node) => {
            let source = NodeSource::start(
                node.clone(),
                metrics.chain.clone(),
                shutdown.clone(),
                Duration::from_secs(30),
            )
            .await?;
            (source, None)
        }
        None => {
            let chain = open_embedded_chain(cfg, store).await?;
            (chain.clone(), Some(chain))
        }
    };
    Ok(Templates {
        source,
        chain,
        node,
    })
}

/// What the coinbase pays when it does not pay the window's accounts.
pub fn payout_script(cfg: &Config) -> anyhow::Result<ScriptBuf> {
    let r = &cfg.rewards;
    if let Some(addr) = &r.payout_address {
        let a = Address::from_str(addr)
            .with_context(|| format!("--payout-address {addr:?} is not an address"))?
            .require_network(r.network)
            .with_context(|| format!("--payout-address is not a {} address", r.network))?;
        return Ok(a.script_pubkey());
    }
    if let Some(script) = &r.payout_script {
        let bytes = hex::decode(script).context("--payout-script must be hex")?;
        return Ok(ScriptBuf::from_bytes(bytes));
    }
    if r.payout_method != PayoutMethod::Coinbase {
        tracing::warn!(
            "no --payout-address or --payout-script: the coinbase pays OP_TRUE (anyone can spend)"
        );
    }
    Ok(ScriptBuf::from_bytes(vec![0x51]))
}

/// The embedded chain's parameters: its genesis, and a proof-of-work limit that is the
/// genesis target unless `--pow-limit` says otherwise (never harder than the genesis).
fn chain_params(c: &crate::config::ChainArgs, maturity: u32) -> ChainParams {
    let genesis_target = c.genesis_bits.to_target().expect("checked by the parser");
    let pow_limit = match c.pow_limit {
        // Never harder than the genesis (checked with the other flags).
        Some(limit) => limit
            .to_target()
            .expect("checked by the parser")
            .max(genesis_target),
        None => genesis_target,
    };
    let max_fork_depth = c.max_fork_depth.unwrap_or(u64::from(maturity));
    ChainParams {
        network: c.p2p_network.clone(),
        genesis_bits: c.genesis_bits,
        pow_limit_bits: c.pow_limit.filter(|l| *l != c.genesis_bits),
        retarget: RetargetParams {
            interval: c.retarget_interval,
            block_time_secs: c.block_time.as_secs().max(1),
            pow_limit,
        },
        branches: BranchRules {
            margin_blocks: DEFAULT_MARGIN_BLOCKS,
            max_fork_depth,
            max_siblings: DEFAULT_MAX_SIBLINGS,
            max_side_blocks: default_max_side_blocks(max_fork_depth),
            max_side_bytes: DEFAULT_MAX_SIDE_BYTES,
            min_chain_work: c
                .min_chain_work
                .or_else(|| min_work::built_in(&c.p2p_network, c.genesis_bits))
                .unwrap_or_else(min_work::none),
        },
    }
}

/// Resume the embedded chain from the store, or start a new one and record its genesis.
async fn open_embedded_chain(cfg: &Config, store: &Store) -> anyhow::Result<Arc<EmbeddedChain>> {
    let genesis_target = cfg
        .chain
        .genesis_bits
        .to_target()
        .expect("checked by the parser");
    let params = chain_params(&cfg.chain, cfg.rewards.maturity);
    std::fs::create_dir_all(&cfg.store.spool_dir)
        .with_context(|| format!("creating {}", cfg.store.spool_dir.display()))?;
    // The chain file is the node's own store of every block (it resumes while the database is
    // away); the database is read for what the file lacks (a file lost, or older than it).
    let (file, from_file) = BlockFile::open(&cfg.store.spool_dir.join("embedded.blocks"))
        .context("opening the embedded chain's block file")?;
    let from_db = blocks_from_db(store, &file, &from_file).await?;
    let (chain, genesis) = EmbeddedChain::open(params, file, from_file, from_db)?;
    if let Some(g) = genesis {
        tracing::info!(
            network = %cfg.chain.p2p_network,
            genesis = %g.block_hash(),
            bits = %cfg.chain.genesis_bits,
            pow_limit = %cfg.chain.pow_limit.unwrap_or(cfg.chain.genesis_bits),
            magic = %network_magic(g.block_hash()),
            "new embedded chain"
        );
        record_genesis(store, &g, genesis_target.difficulty().as_f64()).await;
    } else {
        let (h, hash) = chain.tip();
        tracing::info!(height = h, tip = %hash, "embedded chain resumed");
    }
    Ok(chain)
}

/// The blocks the database holds that the chain file lacks (the file lost, older, or of the
/// earlier layout that kept only the last blocks); an error when neither can rebuild the tree.
async fn blocks_from_db(
    store: &Store,
    file: &BlockFile,
    from_file: &[crate::chain::block_file::Entry],
) -> anyhow::Result<Vec<bitcoin::Block>> {
    let file_height = from_file.iter().map(|e| e.height).max();
    // A file of the earlier layout kept only the last blocks: it cannot rebuild the tree.
    let file_whole = from_file.first().is_some_and(|e| e.height == 0);
    if store.connected() {
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
                .collect::<anyhow::Result<Vec<_>>>()
        } else {
            Ok(Vec::new())
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
        Ok(Vec::new())
    }
}

/// A new chain's genesis, recorded as the first accepted block.
async fn record_genesis(store: &Store, g: &bitcoin::Block, network_difficulty: f64) {
    store
        .handle()
        .record(StoreEvent::Block(BlockRecord {
            hash: g.block_hash().to_string(),
            height: 0,
            prev_hash: g.header.prev_blockhash.to_string(),
            chain: "embedded".into(),
            worker: None,
            network_difficulty,
            status: "accepted".into(),
            detail: Some("genesis".into()),
            raw: bitcoin::consensus::serialize(g),
            found_at: Utc::now(),
            coinbase_plan: None,
        }))
        .await;
}
