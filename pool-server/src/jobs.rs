//! Templates become jobs: one `Arc<Job>` per template or ntime refresh, published on a watch
//! channel that every session follows.
//!
//! A job is the same for every session (extranonce1 is not in `mining.notify`), so its notify
//! line is serialized once here and written as bytes to each connection. A job's
//! `generation` counts chain tips: a share for a job of an older generation is stale.
//!
//! Job ids come from one [`JobIds`] counter per process and are plain lowercase hex of at
//! most 16 digits: every miner reads them as new work (cpuminer-opt compares ids parsed as hex
//! numbers, firmware keeps them in fixed buffers), and no id is used twice for different work.
//! A session that re-issues a job after a difficulty change takes a fresh id from the same
//! counter, and the job's coinbase carries its id (the job tag), so each id is distinct work.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::{Block, BlockHash, Transaction, Witness};
use bytes::Bytes;
use protocol::{
    assemble_coinbase, merkle_branch_for_coinbase, Extranonce1, Extranonce2, HexBytes, JobId,
    Message, Notify, Ntime, PrevHash, ServerNotification,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::chain::coinbase::{stamp_job_tag, CoinbaseBuilder};
use crate::chain::Template;
use crate::rewards::coinbase_plan::{CoinbasePlan, PaidCoinbase, PlanSettings};

/// Job ids: one counter for the whole process, shared by the job builder and by sessions
/// re-issuing jobs. It starts at a random 32-bit value so a restarted pool does not repeat the
/// ids its miners last saw, and it never wraps in practice (2^64 ids).
#[derive(Debug, Clone)]
pub struct JobIds(Arc<AtomicU64>);

impl Default for JobIds {
    fn default() -> Self {
        JobIds(Arc::new(AtomicU64::new(rand::random::<u32>() as u64 + 1)))
    }
}

impl JobIds {
    /// Ids from `first` on (tests and fuzzing want known ids).
    pub fn starting_at(first: u64) -> Self {
        JobIds(Arc::new(AtomicU64::new(first)))
    }

    /// The next id, with the number its coinbase is tagged with.
    pub fn next(&self) -> (JobId, u64) {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        (JobId::new(format!("{n:x}")), n)
    }
}

#[derive(Debug)]
pub struct Job {
    pub id: JobId,
    /// Chain tips seen so far when this job was made.
    pub generation: u64,
    pub template: Arc<Template>,
    /// The notify parameters; `clean_jobs` is true for the first job of a new tip.
    pub notify: Notify,
    /// Under coinbase payouts: whom this job's coinbase pays (stored with a block it finds).
    pub payout: Option<Arc<PaidCoinbase>>,
    line_clean: Bytes,
    line_update: Bytes,
    pub created: Instant,
}

fn notify_line(notify: &Notify) -> Bytes {
    let mut s = Message::Call(ServerNotification::Notify(notify.clone()).to_call()).to_json();
    s.push('\n');
    Bytes::from(s)
}

impl Job {
    pub fn new(id: JobId, generation: u64, template: Arc<Template>, notify: Notify) -> Job {
        Job::paying(id, generation, template, notify, None)
    }

    /// A job whose coinbase pays the accounts of `payout`.
    pub fn paying(
        id: JobId,
        generation: u64,
        template: Arc<Template>,
        notify: Notify,
        payout: Option<Arc<PaidCoinbase>>,
    ) -> Job {
        let mut n = notify.clone();
        n.clean_jobs = true;
        let line_clean = notify_line(&n);
        n.clean_jobs = false;
        let line_update = notify_line(&n);
        Job {
            id,
            generation,
            template,
            notify,
            payout,
            line_clean,
            line_update,
            created: Instant::now(),
        }
    }

    /// The `mining.notify` line (with its newline), telling miners whether to drop old work.
    pub fn notify_line(&self, clean: bool) -> Bytes {
        if clean {
            self.line_clean.clone()
        } else {
            self.line_update.clone()
        }
    }

    /// The same template and ntime under a fresh id, with the id in the coinbase's job tag:
    /// a session re-issuing its job after a difficulty change, so that the new difficulty has
    /// work of its own.
    pub fn reissue(&self, ids: &JobIds) -> Job {
        let (id, tag) = ids.next();
        let mut n = self.notify.clone();
        n.job_id = id.clone();
        stamp_job_tag(&mut n.coinb2.0, tag);
        Job::paying(
            id,
            self.generation,
            self.template.clone(),
            n,
            self.payout.clone(),
        )
    }

    pub fn prev_hash(&self) -> BlockHash {
        self.template.prev_hash
    }

    /// The full block for a share that met the network target.
    pub fn assemble_block(
        &self,
        extranonce1: &Extranonce1,
        extranonce2: &Extranonce2,
        header: bitcoin::block::Header,
    ) -> Block {
        let raw = assemble_coinbase(
            self.notify.coinb1.as_bytes(),
            extranonce1,
            extranonce2,
            self.notify.coinb2.as_bytes(),
        );
        let mut coinbase: Transaction =
            bitcoin::consensus::deserialize(&raw).expect("coinbase halves come from a valid tx");
        if self.template.witness_commitment.is_some() {
            coinbase.input[0].witness = Witness::from_slice(&[[0u8; 32]]);
        }
        let mut txdata = Vec::with_capacity(1 + self.template.transactions.len());
        txdata.push(coinbase);
        txdata.extend(self.template.transactions.iter().cloned());
        Block { header, txdata }
    }
}

/// The chain tip's generation as the job builder counts it: it moves with every new tip, and
/// a share for a job of an older generation is stale.
#[derive(Clone, Default, Debug)]
pub struct TipGeneration(Arc<AtomicU64>);

impl TipGeneration {
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// A new tip (the job builder's; tests drive it by hand).
    pub fn advance(&self) -> u64 {
        self.0.fetch_add(1, Ordering::AcqRel) + 1
    }
}

/// What sessions hold to follow jobs.
#[derive(Clone)]
pub struct JobFeed {
    rx: watch::Receiver<Arc<Job>>,
    generation: TipGeneration,
}

impl JobFeed {
    pub fn current(&self) -> Arc<Job> {
        self.rx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Job>> {
        self.rx.clone()
    }

    /// The generation of the current tip; older jobs are stale.
    pub fn generation(&self) -> u64 {
        self.generation.current()
    }

    /// The tip's generation, to follow without the jobs.
    pub fn tip(&self) -> TipGeneration {
        self.generation.clone()
    }
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Coinbase payouts: the planner's latest plan and how jobs follow it.
pub struct CoinbasePayouts {
    pub plans: watch::Receiver<Arc<CoinbasePlan>>,
    pub settings: PlanSettings,
    /// Rebuild the job when an output moves by this much of the reward (basis points).
    pub rebuild_bps: u32,
}

/// Turns templates into jobs.
pub struct JobBuilder {
    coinbase: CoinbaseBuilder,
    payouts: Option<CoinbasePayouts>,
    ids: JobIds,
    generation: TipGeneration,
    last_prev: Option<BlockHash>,
    /// Merkle branch cached per template (templates are shared `Arc`s).
    branch_for: Option<(usize, Arc<Vec<bitcoin::TxMerkleNode>>)>,
}

impl JobBuilder {
    pub fn new(coinbase: CoinbaseBuilder, ids: JobIds) -> Self {
        JobBuilder {
            coinbase,
            payouts: None,
            ids,
            generation: TipGeneration::default(),
            last_prev: None,
            branch_for: None,
        }
    }

    /// Pay the accounts of the planner's window in every coinbase instead of the payout script.
    pub fn paying_in_coinbase(mut self, payouts: CoinbasePayouts) -> Self {
        self.payouts = Some(payouts);
        self
    }

    /// The coinbase `template` would pay under the current plan.
    fn payout_for(&self, template: &Template) -> Option<Arc<PaidCoinbase>> {
        let p = self.payouts.as_ref()?;
        let plan = p.plans.borrow().clone();
        Some(Arc::new(plan.resolve(
            &p.settings,
            template.coinbase_value.to_sat(),
            template.prev_hash,
        )))
    }

    pub fn build(&mut self, template: &Arc<Template>) -> Job {
        let payout = self.payout_for(template);
        self.build_paying(template, payout)
    }

    fn build_paying(&mut self, template: &Arc<Template>, payout: Option<Arc<PaidCoinbase>>) -> Job {
        let clean = self.last_prev != Some(template.prev_hash);
        if clean {
            self.last_prev = Some(template.prev_hash);
            self.generation.advance();
        }
        let key = Arc::as_ptr(template) as usize;
        let branch = match &self.branch_for {
            Some((k, b)) if *k == key => b.clone(),
            _ => {
                let b = Arc::new(merkle_branch_for_coinbase(&template.txids));
                self.branch_for = Some((key, b.clone()));
                b
            }
        };
        let (id, tag) = self.ids.next();
        let parts = match &payout {
            Some(p) => self.coinbase.build_paying(
                template.height,
                p.outputs(),
                template.witness_commitment.as_ref(),
                tag,
            ),
            None => self.coinbase.build(
                template.height,
                template.coinbase_value,
                template.witness_commitment.as_ref(),
                tag,
            ),
        };
        let ntime = unix_now().max(template.cur_time).max(template.min_time);
        let notify = Notify {
            job_id: id.clone(),
            prevhash: PrevHash::from_block_hash(template.prev_hash),
            coinb1: HexBytes(parts.coinb1),
            coinb2: HexBytes(parts.coinb2),
            merkle_branch: branch.as_ref().clone(),
            version: template.version,
            nbits: template.bits,
            ntime: Ntime(ntime),
            clean_jobs: clean,
        };
        Job::paying(
            id,
            self.generation.current(),
            template.clone(),
            notify,
            payout,
        )
    }

    /// Build the first job and start following `templates`, refreshing ntime every `refresh`.
    pub fn spawn(
        mut self,
        mut templates: watch::Receiver<Arc<Template>>,
        refresh: Duration,
        shutdown: CancellationToken,
    ) -> JobFeed {
        let first = Arc::new(self.build(&templates.borrow_and_update().clone()));
        let mut plans = self.payouts.as_ref().map(|p| p.plans.clone());
        let (tx, rx) = watch::channel(first);
        let feed = JobFeed {
            rx,
            generation: self.generation.clone(),
        };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + refresh, refresh);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    changed = templates.changed() => {
                        if changed.is_err() { break; }
                        let t = templates.borrow_and_update().clone();
                        let job = self.build(&t);
                        tracing::debug!(job = %job.id, height = t.height, clean = job.notify.clean_jobs, "new job");
                        tx.send_replace(Arc::new(job));
                        tick.reset();
                    }
                    _ = tick.tick() => {
                        let t = templates.borrow().clone();
                        tx.send_replace(Arc::new(self.build(&t)));
                    }
                    changed = async { plans.as_mut().expect("guarded").changed().await }, if plans.is_some() => {
                        if changed.is_err() { plans = None; continue; }
                        plans.as_mut().expect("guarded").borrow_and_update();
                        // A new plan rebuilds the job only when it pays differently enough.
                        let t = templates.borrow().clone();
                        let payout = self.payout_for(&t);
                        let current = tx.borrow().payout.clone();
                        let rebuild = match (&payout, &current, &self.payouts) {
                            (Some(new), Some(old), Some(p)) => new.differs_from(old, p.rebuild_bps),
                            _ => false,
                        };
                        if rebuild {
                            let job = self.build_paying(&t, payout);
                            tracing::debug!(job = %job.id, "coinbase payouts changed: new job");
                            tx.send_replace(Arc::new(job));
                            tick.reset();
                        }
                    }
                }
            }
        });
        feed
    }
}
