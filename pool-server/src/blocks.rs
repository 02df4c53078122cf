//! The block path: a share that met the network target becomes a full block, goes to the
//! template source (the embedded chain, or `submitblock` to a node), and is recorded with the
//! verdict. Blocks from peers take the same path into the embedded chain.
//!
//! One block at a time: accepting a block and recording what it changed (the block, the
//! orphans it let in, the blocks a reorganisation moved off or onto the best chain) happen
//! together, so the store never records a status older than one already recorded.

use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Block, BlockHash};
use chrono::Utc;
use protocol::{CompactTarget, Extranonce1, Extranonce2, WorkerName};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::chain::embedded::{EmbeddedChain, Origin, Outcome};
use crate::chain::metrics::ChainMetrics;
use crate::chain::TemplateSource;
use crate::jobs::Job;
use crate::rewards::block_plans;
use crate::store::{Backend, BlockRecord, StoreEvent, StoreHandle};

/// A share that met the network target, with what is needed to rebuild its block.
pub struct FoundBlock {
    pub job: Arc<Job>,
    pub extranonce1: Extranonce1,
    pub extranonce2: Extranonce2,
    pub header: bitcoin::block::Header,
    pub worker: WorkerName,
}

/// Where blocks enter the chain and the store.
pub struct BlockPath {
    source: Arc<dyn TemplateSource>,
    /// The embedded chain, when it is the source (it also takes peers' blocks).
    chain: Option<Arc<EmbeddedChain>>,
    store: StoreHandle,
    /// Coinbase payouts: where a plan that carries balances is written before its block goes
    /// out (see [`BlockPath::found`]).
    plans: Option<Backend>,
    metrics: ChainMetrics,
    one_at_a_time: tokio::sync::Mutex<()>,
}

/// How long a block waits for its plan to be written before it is submitted anyway.
const PLAN_WRITE_PATIENCE: Duration = Duration::from_secs(1);

fn difficulty_of(block: &Block) -> f64 {
    CompactTarget::from(block.header.bits)
        .to_target()
        .map(|t| t.difficulty().as_f64())
        .unwrap_or(0.0)
}

impl BlockPath {
    pub fn new(
        source: Arc<dyn TemplateSource>,
        chain: Option<Arc<EmbeddedChain>>,
        store: StoreHandle,
        plans: Option<Backend>,
        metrics: ChainMetrics,
    ) -> Arc<BlockPath> {
        Arc::new(BlockPath {
            source,
            chain,
            store,
            plans,
            metrics,
            one_at_a_time: tokio::sync::Mutex::new(()),
        })
    }

    /// Take found blocks from the sessions until they are all gone.
    pub fn spawn(self: Arc<Self>, mut rx: mpsc::Receiver<FoundBlock>) -> JoinHandle<()> {
        tokio::spawn(async move {
            while let Some(found) = rx.recv().await {
                self.found(found).await;
            }
        })
    }

    /// A block found by a share: submit it and record the verdict.
    pub async fn found(&self, found: FoundBlock) {
        let block = found
            .job
            .assemble_block(&found.extranonce1, &found.extranonce2, found.header);
        let hash = block.block_hash();
        let height = found.job.template.height;
        let _serial = self.one_at_a_time.lock().await;
        let plan = found.job.payout.as_deref();
        // A coinbase that pays carried balances is on record before anyone can build on its
        // block: planners (here or on another pool-server) then never carry them again.
        if let (Some(plan), Some(backend)) = (plan, &self.plans) {
            if plan.credits.iter().any(|c| c.carry_sats > 0) {
                let key = hash.to_string();
                let write = block_plans::record(backend, &key, plan, Utc::now());
                match tokio::time::timeout(PLAN_WRITE_PATIENCE, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(block = %hash, error = %e, "cannot write the block's coinbase plan first; it follows with the block")
                    }
                    Err(_) => {
                        tracing::warn!(block = %hash, "the block's coinbase plan is slow to write; submitting first")
                    }
                }
            }
        }
        let (verdict, outcome) = match &self.chain {
            Some(chain) => {
                let outcome = chain.accept(&block, Origin::Local);
                (outcome.verdict.clone(), Some(outcome))
            }
            None => (self.source.submit_block(block.clone()).await, None),
        };
        self.metrics
            .blocks
            .with_label_values(&[verdict.status()])
            .inc();
        if verdict.is_found() {
            self.metrics
                .last_block_time
                .set(Utc::now().timestamp() as f64);
            tracing::info!(block = %hash, height, worker = %found.worker, result = verdict.status(), "block found");
        } else {
            tracing::warn!(block = %hash, height, worker = %found.worker, result = verdict.status(), reason = verdict.detail().unwrap_or(""), "block not accepted");
        }
        self.store
            .record(StoreEvent::Block(BlockRecord {
                hash: hash.to_string(),
                height: height as i64,
                prev_hash: block.header.prev_blockhash.to_string(),
                chain: self.source.kind().to_owned(),
                worker: Some(found.worker.to_string()),
                network_difficulty: found.job.template.target.difficulty().as_f64(),
                status: verdict.status().to_owned(),
                detail: verdict.detail().map(str::to_owned),
                raw: bitcoin::consensus::serialize(&block),
                found_at: Utc::now(),
                coinbase_plan: plan.and_then(|p| serde_json::to_string(p).ok()),
            }))
            .await;
        if let Some(outcome) = outcome {
            self.record_changes(&outcome, Some(hash)).await;
        }
    }

    /// A block sent by a peer: check it into the embedded chain and record what changed.
    /// `None` when the pool mines on a node (peers are the node's business then).
    /// A peer's block; `vouched` when it was asked for because a header chain with the work to
    /// lead goes through it.
    pub async fn from_peer(&self, block: &Block, vouched: bool) -> Option<Outcome> {
        let chain = self.chain.as_ref()?;
        let _serial = self.one_at_a_time.lock().await;
        let origin = if vouched {
            Origin::Vouched
        } else {
            Origin::Peer
        };
        let outcome = chain.accept(block, origin);
        self.record_changes(&outcome, None).await;
        Some(outcome)
    }

    /// Record every block `outcome` stored or moved, with where it stands now (`except` is
    /// recorded by the caller).
    async fn record_changes(&self, outcome: &Outcome, except: Option<BlockHash>) {
        let Some(chain) = &self.chain else { return };
        let mut touched: Vec<BlockHash> = outcome.stored.iter().map(|s| s.hash).collect();
        for r in &outcome.reorgs {
            self.metrics.reorgs.inc();
            self.metrics
                .reorg_depth
                .observe(r.disconnected.len() as f64);
            touched.extend(r.disconnected.iter().chain(&r.connected));
        }
        let mut done = std::collections::HashSet::new();
        for hash in touched {
            if Some(hash) == except || !done.insert(hash) {
                continue;
            }
            let (Some(standing), Some(block)) = (chain.standing(&hash), chain.block(&hash)) else {
                continue;
            };
            if standing.found_here && !standing.best {
                tracing::warn!(block = %hash, height = standing.height, "a block found here left the best chain: orphaned");
            }
            let status = if standing.best {
                "accepted"
            } else {
                "orphaned"
            };
            self.store
                .record(StoreEvent::Block(BlockRecord {
                    hash: hash.to_string(),
                    height: standing.height as i64,
                    prev_hash: block.header.prev_blockhash.to_string(),
                    chain: self.source.kind().to_owned(),
                    worker: None,
                    network_difficulty: difficulty_of(&block),
                    status: status.to_owned(),
                    detail: (!standing.found_here).then(|| "from a peer".to_owned()),
                    raw: bitcoin::consensus::serialize(&block),
                    found_at: Utc::now(),
                    coinbase_plan: None,
                }))
                .await;
        }
    }
}
