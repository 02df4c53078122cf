//! The ledger: every block the pool finds is credited once to the accounts that did the work,
//! and its credits follow the block as it matures or leaves the best chain.
//!
//! A pass (every couple of seconds, on every pool-server writing to the database):
//! 1. **Credit**: blocks found by the pool (a worker is recorded) that are on the best chain and
//!    have no credits yet, once `--credit-delay` has passed since they were found (so shares
//!    still on their way from other pool-servers are stored), are shared by the scheme over the
//!    window read from the store ([`super::window`]) and stored in one transaction: the reward
//!    row and its credits, or nothing. A second pool-server crediting the same block adds
//!    nothing (the block hash is the key), so credits are computed once and never differently.
//! 2. **Mature**: each immature (or recently voided) block is asked of the template source:
//!    `--maturity` confirmations make its credits mature (final); off the best chain
//!    (`confirmations: -1`, or a reorganisation of the embedded chain) voids them, visibly; a
//!    voided block that returns to the best chain before maturity is immature again.
//!
//! If a window holds no credited work (its shares were lost), the finder's account takes the
//! block, as under SOLO: a reward is never left unassigned.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::BlockHash;
use chrono::{DateTime, Utc};
use protocol::account_of;
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::block_plans;
use super::coinbase_plan::{PaidCoinbase, WindowFacts};
use super::metrics::RewardMetrics;
use super::scheme::{self, Split, Work};
use super::window::{self, Anchor, Reach};
use super::{RewardConfig, Scheme};
use crate::chain::TemplateSource;
use crate::store::{Backend, Dialect};
use crate::with_pool;

/// How often the ledger looks for blocks to credit and confirmations to count.
const PASS_EVERY: Duration = Duration::from_secs(2);

/// A found block the ledger has not credited.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Uncredited {
    hash: String,
    height: i64,
    worker: String,
    network_difficulty: f64,
    raw: Vec<u8>,
    found_at: DateTime<Utc>,
}

/// How a block's reward was shared, as stored and shown.
#[derive(Debug, Clone, Serialize, PartialEq, sqlx::FromRow)]
pub struct BlockReward {
    pub block_hash: String,
    pub height: i64,
    pub chain: String,
    pub scheme: String,
    pub reward_sats: i64,
    pub fee_bps: i64,
    pub fee_sats: i64,
    pub window_difficulty: f64,
    pub credited_difficulty: f64,
    pub shares: i64,
    pub window_start_us: Option<i64>,
    pub window_end_us: i64,
    /// `immature`, `mature` or `void`.
    pub state: String,
    pub confirmations: i64,
    pub credited_at: DateTime<Utc>,
    pub state_at: DateTime<Utc>,
    /// `balance` (credits wait to be paid) or `coinbase` (the block's coinbase paid them).
    pub payout: String,
    /// Under coinbase payouts: what the pool's own output took.
    pub pool_sats: Option<i64>,
    #[sqlx(skip)]
    pub credits: Vec<Credit>,
}

/// One account's part of one block.
#[derive(Debug, Clone, Serialize, PartialEq, sqlx::FromRow)]
pub struct Credit {
    pub account: String,
    pub sats: i64,
    /// The credited difficulty of its shares in the window.
    pub difficulty: f64,
    /// Coinbase payouts: earlier balance paid in this block's output to the account.
    pub carry_sats: i64,
    /// Coinbase payouts: the output's value (0: no output; the credit waits as balance).
    pub paid_sats: i64,
    /// Where that output paid.
    pub address: Option<String>,
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PassReport {
    pub credited: Vec<String>,
    pub matured: Vec<String>,
    pub voided: Vec<String>,
    pub restored: Vec<String>,
}

pub struct Ledger {
    pub backend: Backend,
    pub source: Arc<dyn TemplateSource>,
    pub cfg: RewardConfig,
    pub metrics: RewardMetrics,
}

/// The sum of a block's coinbase outputs: its subsidy and fees, what the split shares.
pub fn coinbase_value(raw: &[u8]) -> anyhow::Result<u64> {
    let block: bitcoin::Block = bitcoin::consensus::deserialize(raw)?;
    let coinbase = block
        .txdata
        .first()
        .ok_or_else(|| anyhow::anyhow!("block has no coinbase"))?;
    Ok(coinbase.output.iter().map(|o| o.value.to_sat()).sum())
}

impl Ledger {
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PASS_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                }
                if let Err(e) = self.pass(Utc::now()).await {
                    tracing::warn!(error = %e, "reward ledger pass failed; retrying");
                }
            }
        })
    }

    /// Credit what is due, count confirmations, refresh the balance gauges.
    pub async fn pass(&self, now: DateTime<Utc>) -> anyhow::Result<PassReport> {
        let mut report = PassReport::default();
        for block in self.uncredited().await? {
            let due = block.found_at
                + chrono::Duration::from_std(self.cfg.credit_delay).unwrap_or_default();
            if due > now {
                continue;
            }
            if self.credit(&block, now).await? {
                report.credited.push(block.hash.clone());
            }
        }
        self.count_confirmations(now, &mut report).await?;
        let totals = super::accounts::totals(&self.backend).await?;
        for (state, sats) in [
            ("immature", totals.immature_sats),
            ("due", totals.due_sats),
            ("pending", totals.pending_sats),
            ("in_coinbase", totals.in_coinbase_sats),
        ] {
            self.metrics
                .rewards_sats
                .with_label_values(&[state])
                .set(sats);
        }
        Ok(report)
    }

    async fn uncredited(&self) -> anyhow::Result<Vec<Uncredited>> {
        let chain = self.source.kind();
        Ok(with_pool!(&self.backend, p => sqlx::query_as(&p.sql(
            "SELECT b.hash, b.height, b.worker, b.network_difficulty, b.raw, b.found_at
             FROM blocks b
             WHERE b.chain = $1 AND b.worker IS NOT NULL AND b.status IN ('accepted', 'duplicate')
               AND NOT EXISTS (SELECT 1 FROM block_rewards r WHERE r.block_hash = b.hash)
             ORDER BY b.height, b.hash LIMIT 100",
        ))
        .bind(chain)
        .fetch_all(p)
        .await?))
    }

    /// Share `block`'s reward and store it; false when another pool-server stored it first.
    async fn credit(&self, block: &Uncredited, now: DateTime<Utc>) -> anyhow::Result<bool> {
        if let Some(plan) = block_plans::plan_of(&self.backend, &block.hash).await? {
            return self.credit_as_paid(block, plan, now).await;
        }
        let reward = coinbase_value(&block.raw)?;
        let found_us = block.found_at.timestamp_micros();
        let anchor = window::find_anchor(&self.backend, &block.hash, found_us)
            .await?
            .unwrap_or(Anchor {
                at_micros: found_us,
                id: Uuid::max(),
            });
        let floor = found_us
            - i64::try_from(self.cfg.share_retention.as_micros()).unwrap_or(i64::MAX / 2)
            - 86_400_000_000;
        let finder = account_of(&block.worker).to_owned();
        let window_difficulty = match self.cfg.scheme {
            Scheme::Pplns => self.cfg.pplns_window * block.network_difficulty,
            Scheme::Prop | Scheme::Solo => 0.0,
        };
        let (weights, shares, credited, oldest) = match self.cfg.scheme {
            Scheme::Solo => (scheme::solo_weights(&finder), 0, Work(0), None),
            Scheme::Pplns | Scheme::Prop => {
                let reach = if self.cfg.scheme == Scheme::Pplns {
                    Reach::Work(Work::of_difficulty(window_difficulty))
                } else {
                    match window::previous_block_anchor(
                        &self.backend,
                        self.source.kind(),
                        anchor.at_micros,
                    )
                    .await?
                    {
                        Some(prev) => Reach::Since(prev),
                        None => Reach::Work(Work(u128::MAX)),
                    }
                };
                let walked = window::walk(&self.backend, anchor, reach, floor).await?;
                let (shares, credited) = (walked.fill.shares, walked.fill.credited);
                (
                    walked.fill.into_weights(),
                    shares,
                    credited,
                    walked.oldest_micros,
                )
            }
        };
        let weights = if weights.is_empty() {
            tracing::warn!(block = %block.hash, account = %finder, "no credited work in the window: the finder's account takes the block");
            scheme::solo_weights(&finder)
        } else {
            weights
        };
        let Split { fee_sats, credits } = scheme::split(reward, self.cfg.fee_bps, &weights)?;
        let window = WindowFacts {
            window_difficulty,
            credited_difficulty: credited.as_difficulty(),
            shares,
            window_start_us: oldest,
            window_end_us: anchor.at_micros,
        };
        let credits = credits
            .iter()
            .map(|(account, sats)| Credit {
                account: account.clone(),
                sats: *sats as i64,
                difficulty: weights.get(account).map_or(0.0, |w| w.as_difficulty()),
                carry_sats: 0,
                paid_sats: 0,
                address: None,
            })
            .collect();
        self.keep(block, reward, fee_sats, &window, credits, None, now)
            .await
    }

    /// Credit a block found by a job that paid in its coinbase: as its plan says, each output
    /// checked against the block's coinbase (an output the block does not hold is recorded as
    /// not paid, so the account's balance stays due).
    async fn credit_as_paid(
        &self,
        block: &Uncredited,
        plan: PaidCoinbase,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let parsed: bitcoin::Block = bitcoin::consensus::deserialize(&block.raw)?;
        let coinbase = parsed
            .txdata
            .first()
            .ok_or_else(|| anyhow::anyhow!("block has no coinbase"))?;
        let reward: u64 = coinbase.output.iter().map(|o| o.value.to_sat()).sum();
        if reward != plan.reward_sats {
            tracing::error!(block = %block.hash, reward, planned = plan.reward_sats, "the block's coinbase claims another reward than its plan");
        }
        let mut outputs: Vec<(bitcoin::ScriptBuf, u64)> = coinbase
            .output
            .iter()
            .map(|o| (o.script_pubkey.clone(), o.value.to_sat()))
            .collect();
        let mut credits = Vec::with_capacity(plan.credits.len() + 1);
        let mut paid_total = 0u64;
        for c in &plan.credits {
            let mut credit = Credit {
                account: c.account.clone(),
                sats: c.sats as i64,
                difficulty: Work(c.work).as_difficulty(),
                carry_sats: c.carry_sats as i64,
                paid_sats: c.paid_sats as i64,
                address: c.address.clone(),
            };
            if c.paid_sats > 0 {
                let found = c.script.as_ref().and_then(|script| {
                    outputs
                        .iter()
                        .position(|(s, v)| s == script && *v == c.paid_sats)
                });
                match found {
                    Some(i) => {
                        outputs.swap_remove(i);
                        paid_total += c.paid_sats;
                    }
                    None => {
                        tracing::error!(block = %block.hash, account = %c.account, sats = c.paid_sats, "the plan pays an output the block's coinbase lacks: recorded unpaid");
                        credit.carry_sats = 0;
                        credit.paid_sats = 0;
                    }
                }
            }
            credits.push(credit);
        }
        // A window without work: the finder's account is credited (unpaid; carried later).
        let parts: u64 = plan.credits.iter().map(|c| c.sats).sum();
        if parts == 0 {
            let finder = account_of(&block.worker);
            let rest = (plan.reward_sats - plan.fee_sats) as i64;
            match credits.iter_mut().find(|c| c.account == finder) {
                Some(c) => c.sats += rest,
                None => credits.push(Credit {
                    account: finder.to_owned(),
                    sats: rest,
                    difficulty: 0.0,
                    carry_sats: 0,
                    paid_sats: 0,
                    address: None,
                }),
            }
        }
        let pool_sats = plan.reward_sats.saturating_sub(paid_total);
        self.keep(
            block,
            plan.reward_sats,
            plan.fee_sats,
            &plan.window,
            credits,
            Some(pool_sats),
            now,
        )
        .await
    }

    /// Store a block's reward and credits (once: false when another pool-server stored them
    /// first). `pool_sats` is the pool's output when the coinbase paid the credits.
    #[allow(clippy::too_many_arguments)]
    async fn keep(
        &self,
        block: &Uncredited,
        reward_sats: u64,
        fee_sats: u64,
        w: &WindowFacts,
        credits: Vec<Credit>,
        pool_sats: Option<u64>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let accounts = credits.len();
        let stored = self
            .store_credits(&BlockReward {
                block_hash: block.hash.clone(),
                height: block.height,
                chain: self.source.kind().to_owned(),
                scheme: self.cfg.scheme.name().to_owned(),
                reward_sats: reward_sats as i64,
                fee_bps: i64::from(self.cfg.fee_bps),
                fee_sats: fee_sats as i64,
                window_difficulty: w.window_difficulty,
                credited_difficulty: w.credited_difficulty,
                shares: w.shares as i64,
                window_start_us: w.window_start_us,
                window_end_us: w.window_end_us,
                state: "immature".into(),
                confirmations: 0,
                credited_at: now,
                state_at: now,
                payout: if pool_sats.is_some() {
                    "coinbase"
                } else {
                    "balance"
                }
                .into(),
                pool_sats: pool_sats.map(|s| s as i64),
                credits,
            })
            .await?;
        if stored {
            self.metrics
                .blocks_credited
                .with_label_values(&[self.cfg.scheme.name()])
                .inc();
            tracing::info!(block = %block.hash, height = block.height, scheme = self.cfg.scheme.name(), reward_sats, fee_sats, accounts, shares = w.shares, coinbase_paid = pool_sats.is_some(), "block credited");
        }
        Ok(stored)
    }

    async fn store_credits(&self, r: &BlockReward) -> anyhow::Result<bool> {
        with_pool!(&self.backend, p => {
            let mut tx = p.begin().await?;
            let inserted = sqlx::query(&p.sql(
                "INSERT INTO block_rewards (block_hash, height, chain, scheme, reward_sats, fee_bps,
                     fee_sats, window_difficulty, credited_difficulty, shares, window_start_us,
                     window_end_us, state, confirmations, credited_at, state_at, payout, pool_sats)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                         $17, $18)
                 ON CONFLICT (block_hash) DO NOTHING",
            ))
            .bind(&r.block_hash)
            .bind(r.height)
            .bind(&r.chain)
            .bind(&r.scheme)
            .bind(r.reward_sats)
            .bind(r.fee_bps)
            .bind(r.fee_sats)
            .bind(r.window_difficulty)
            .bind(r.credited_difficulty)
            .bind(r.shares)
            .bind(r.window_start_us)
            .bind(r.window_end_us)
            .bind(&r.state)
            .bind(r.confirmations)
            .bind(r.credited_at)
            .bind(r.state_at)
            .bind(&r.payout)
            .bind(r.pool_sats)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            for c in &r.credits {
                sqlx::query(&p.sql(
                    "INSERT INTO block_credits (block_hash, account, sats, difficulty, carry_sats,
                         paid_sats, address)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                ))
                .bind(&r.block_hash)
                .bind(&c.account)
                .bind(c.sats)
                .bind(c.difficulty)
                .bind(c.carry_sats)
                .bind(c.paid_sats)
                .bind(&c.address)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Move credits with their blocks' confirmations.
    async fn count_confirmations(
        &self,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) -> anyhow::Result<()> {
        // Voided blocks are looked at again while they are recent: a reorganisation back
        // restores them.
        let tip = self.source.templates().borrow().height as i64 - 1;
        let open: Vec<(String, String, i64)> = with_pool!(&self.backend, p => sqlx::query_as(&p.sql(
            "SELECT block_hash, state, confirmations FROM block_rewards
             WHERE chain = $1 AND (state = 'immature' OR (state = 'void' AND height > $2))
             ORDER BY height",
        ))
        .bind(self.source.kind())
        .bind(tip - i64::from(self.cfg.maturity) * 2)
        .fetch_all(p)
        .await?);
        for (hash, state, known) in open {
            let Ok(parsed) = BlockHash::from_str(&hash) else {
                continue;
            };
            let confirmations = match self.source.confirmations(parsed).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(block = %hash, error = %e, "confirmations unknown for now");
                    continue;
                }
            };
            let next = if confirmations < 0 {
                "void"
            } else if confirmations >= i64::from(self.cfg.maturity) {
                "mature"
            } else {
                "immature"
            };
            if next == state && confirmations == known {
                continue;
            }
            with_pool!(&self.backend, p => sqlx::query(&p.sql(
                "UPDATE block_rewards SET state = $2, confirmations = $3,
                     state_at = CASE WHEN state = $2 THEN state_at ELSE $4 END
                 WHERE block_hash = $1 AND state <> 'mature'",
            ))
            .bind(&hash)
            .bind(next)
            .bind(confirmations)
            .bind(now)
            .execute(p)
            .await?
            .rows_affected());
            if next == state {
                continue;
            }
            match next {
                "mature" => {
                    tracing::info!(block = %hash, confirmations, "block reward mature");
                    report.matured.push(hash);
                }
                "void" => {
                    tracing::warn!(block = %hash, "block left the best chain: its credits are void");
                    report.voided.push(hash);
                }
                _ => {
                    tracing::info!(block = %hash, "block is back on the best chain: its credits count again");
                    report.restored.push(hash);
                }
            }
        }
        Ok(())
    }
}

/// A credited block with its credits, for the API.
pub async fn block_reward(backend: &Backend, hash: &str) -> anyhow::Result<Option<BlockReward>> {
    let row: Option<BlockReward> = with_pool!(backend, p => sqlx::query_as(&p.sql(
        "SELECT block_hash, height, chain, scheme, reward_sats, CAST(fee_bps AS BIGINT) AS fee_bps,
                fee_sats, window_difficulty, credited_difficulty, shares, window_start_us,
                window_end_us, state, confirmations, credited_at, state_at, payout, pool_sats
         FROM block_rewards WHERE block_hash = $1",
    ))
    .bind(hash)
    .fetch_optional(p)
    .await?);
    let Some(mut reward) = row else {
        return Ok(None);
    };
    let credits: Vec<Credit> = with_pool!(backend, p => sqlx::query_as(&p.sql(
        "SELECT account, sats, difficulty, carry_sats, paid_sats, address
         FROM block_credits WHERE block_hash = $1
         ORDER BY sats DESC, account",
    ))
    .bind(hash)
    .fetch_all(p)
    .await?);
    reward.credits = credits;
    Ok(Some(reward))
}
