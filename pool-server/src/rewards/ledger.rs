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
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::scheme::{self, Split, Work};
use super::window::{self, Anchor, Reach};
use super::{RewardConfig, Scheme};
use crate::chain::TemplateSource;
use crate::metrics::Metrics;
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
#[derive(Debug, Clone, Serialize, PartialEq)]
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
    pub credits: Vec<Credit>,
}

/// One account's part of one block.
#[derive(Debug, Clone, Serialize, PartialEq, sqlx::FromRow)]
pub struct Credit {
    pub account: String,
    pub sats: i64,
    /// The credited difficulty of its shares in the window.
    pub difficulty: f64,
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
    pub metrics: Arc<Metrics>,
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

/// The account of a worker name: the part before the first dot.
pub fn account_of(worker: &str) -> &str {
    worker.split('.').next().unwrap_or(worker)
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
        self.metrics
            .rewards_sats
            .with_label_values(&["immature"])
            .set(totals.immature_sats);
        self.metrics
            .rewards_sats
            .with_label_values(&["due"])
            .set(totals.due_sats);
        self.metrics
            .rewards_sats
            .with_label_values(&["pending"])
            .set(totals.pending_sats);
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

    /// The previous credited block's anchor, for PROP.
    async fn previous_anchor(&self, before: &Anchor) -> anyhow::Result<Option<Anchor>> {
        let at: Option<i64> = with_pool!(&self.backend, p => sqlx::query_scalar(&p.sql(
            "SELECT max(window_end_us) FROM block_rewards WHERE window_end_us < $1 AND chain = $2",
        ))
        .bind(before.at_micros)
        .bind(self.source.kind())
        .fetch_one(p)
        .await?);
        // Shares at that very microsecond but after the previous block's share are counted by
        // neither block's walk; a microsecond of shares, once per block.
        Ok(at.map(|at_micros| Anchor {
            at_micros,
            id: Uuid::max(),
        }))
    }

    /// Share `block`'s reward and store it; false when another pool-server stored it first.
    async fn credit(&self, block: &Uncredited, now: DateTime<Utc>) -> anyhow::Result<bool> {
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
                    match self.previous_anchor(&anchor).await? {
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
        let stored = self
            .store_credits(&BlockReward {
                block_hash: block.hash.clone(),
                height: block.height,
                chain: self.source.kind().to_owned(),
                scheme: self.cfg.scheme.name().to_owned(),
                reward_sats: reward as i64,
                fee_bps: i64::from(self.cfg.fee_bps),
                fee_sats: fee_sats as i64,
                window_difficulty,
                credited_difficulty: credited.as_difficulty(),
                shares: shares as i64,
                window_start_us: oldest,
                window_end_us: anchor.at_micros,
                state: "immature".into(),
                confirmations: 0,
                credited_at: now,
                state_at: now,
                credits: credits
                    .iter()
                    .map(|(account, sats)| Credit {
                        account: account.clone(),
                        sats: *sats as i64,
                        difficulty: weights.get(account).map_or(0.0, |w| w.as_difficulty()),
                    })
                    .collect(),
            })
            .await?;
        if stored {
            self.metrics
                .blocks_credited
                .with_label_values(&[self.cfg.scheme.name()])
                .inc();
            tracing::info!(block = %block.hash, height = block.height, scheme = self.cfg.scheme.name(), reward_sats = reward, fee_sats, accounts = credits.len(), shares, "block credited");
        }
        Ok(stored)
    }

    async fn store_credits(&self, r: &BlockReward) -> anyhow::Result<bool> {
        with_pool!(&self.backend, p => {
            let mut tx = p.begin().await?;
            let inserted = sqlx::query(&p.sql(
                "INSERT INTO block_rewards (block_hash, height, chain, scheme, reward_sats, fee_bps,
                     fee_sats, window_difficulty, credited_difficulty, shares, window_start_us,
                     window_end_us, state, confirmations, credited_at, state_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
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
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            for c in &r.credits {
                sqlx::query(&p.sql(
                    "INSERT INTO block_credits (block_hash, account, sats, difficulty)
                     VALUES ($1, $2, $3, $4)",
                ))
                .bind(&r.block_hash)
                .bind(&c.account)
                .bind(c.sats)
                .bind(c.difficulty)
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
    type Row = (
        String,
        i64,
        String,
        String,
        i64,
        i64,
        i64,
        f64,
        f64,
        i64,
        Option<i64>,
        i64,
        String,
        i64,
        DateTime<Utc>,
        DateTime<Utc>,
    );
    let row: Option<Row> = with_pool!(backend, p => sqlx::query_as(&p.sql(
        "SELECT block_hash, height, chain, scheme, reward_sats, CAST(fee_bps AS BIGINT), fee_sats,
                window_difficulty, credited_difficulty, shares, window_start_us, window_end_us,
                state, confirmations, credited_at, state_at
         FROM block_rewards WHERE block_hash = $1",
    ))
    .bind(hash)
    .fetch_optional(p)
    .await?);
    let Some(r) = row else { return Ok(None) };
    let credits: Vec<Credit> = with_pool!(backend, p => sqlx::query_as(&p.sql(
        "SELECT account, sats, difficulty FROM block_credits WHERE block_hash = $1
         ORDER BY sats DESC, account",
    ))
    .bind(hash)
    .fetch_all(p)
    .await?);
    Ok(Some(BlockReward {
        block_hash: r.0,
        height: r.1,
        chain: r.2,
        scheme: r.3,
        reward_sats: r.4,
        fee_bps: r.5,
        fee_sats: r.6,
        window_difficulty: r.7,
        credited_difficulty: r.8,
        shares: r.9,
        window_start_us: r.10,
        window_end_us: r.11,
        state: r.12,
        confirmations: r.13,
        credited_at: r.14,
        state_at: r.15,
        credits,
    }))
}
