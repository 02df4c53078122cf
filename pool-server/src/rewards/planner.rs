//! The planner (`--payout-method coinbase`): reads the current window from the store and
//! publishes it as a [`CoinbasePlan`] for the job builder, every `--plan-interval` and at
//! every new tip.
//!
//! The window is the scheme's, read as if a block were found now: PPLNS walks back
//! `--pplns-window` x the current network difficulty of accepted work from the newest share;
//! PROP counts the work since the previous credited block. Carries are the accounts' mature
//! balances (`due`), less what coinbases of blocks found but not yet credited already carry.
//! A plan read for one tip carries balances on that tip only (see [`super::coinbase_plan`]).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::Address;
use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::coinbase_plan::{CoinbasePlan, Payee, WindowFacts};
use super::scheme::Work;
use super::window::{self, Anchor, Reach};
use super::{accounts, block_plans, RewardConfig, Scheme};
use crate::chain::Template;
use crate::store::Backend;

pub struct Planner {
    pub backend: Backend,
    pub templates: watch::Receiver<Arc<Template>>,
    /// The template source's kind (`embedded`, `node`): PROP's previous block is of it.
    pub chain: &'static str,
    pub cfg: RewardConfig,
    pub network: bitcoin::Network,
    pub interval: Duration,
}

impl Planner {
    /// Read a first plan, then keep reading; the receiver follows the latest.
    pub async fn spawn(
        mut self,
        shutdown: CancellationToken,
    ) -> watch::Receiver<Arc<CoinbasePlan>> {
        let first = match self.read(Utc::now()).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the payout window yet; the pool's output takes the coinbase until it can");
                CoinbasePlan::empty()
            }
        };
        let (tx, rx) = watch::channel(Arc::new(first));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(self.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut tip = self.templates.borrow().prev_hash;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tick.tick() => {}
                    changed = self.templates.changed() => {
                        if changed.is_err() { break; }
                        let now_tip = self.templates.borrow_and_update().prev_hash;
                        if now_tip == tip { continue; }
                        tip = now_tip;
                        tick.reset();
                    }
                }
                match self.read(Utc::now()).await {
                    Ok(plan) => {
                        tx.send_if_modified(|old| {
                            let changed = **old != plan;
                            if changed {
                                *old = Arc::new(plan);
                            }
                            changed
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the payout window; jobs keep the last plan without carried balances")
                    }
                }
            }
        });
        rx
    }

    /// The window and the balances as they stand at `now`, for the current tip.
    pub async fn read(&self, now: DateTime<Utc>) -> anyhow::Result<CoinbasePlan> {
        let template = self.templates.borrow().clone();
        let now_us = now.timestamp_micros();
        let anchor = Anchor {
            at_micros: now_us,
            id: Uuid::max(),
        };
        let floor = now_us
            - i64::try_from(self.cfg.share_retention.as_micros()).unwrap_or(i64::MAX / 2)
            - 86_400_000_000;
        let (window_difficulty, reach) = match self.cfg.scheme {
            Scheme::Pplns => {
                let d = self.cfg.pplns_window * template.target.difficulty().as_f64();
                (d, Reach::Work(Work::of_difficulty(d)))
            }
            Scheme::Prop | Scheme::Solo => (
                0.0,
                match window::previous_block_anchor(&self.backend, self.chain, now_us).await? {
                    Some(prev) => Reach::Since(prev),
                    None => Reach::Work(Work(u128::MAX)),
                },
            ),
        };
        let walked = window::walk(&self.backend, anchor, reach, floor).await?;
        let facts = WindowFacts {
            window_difficulty,
            credited_difficulty: walked.fill.credited.as_difficulty(),
            shares: walked.fill.shares,
            window_start_us: walked.oldest_micros,
            window_end_us: now_us,
        };
        let weights = walked.fill.into_weights();
        let in_flight = block_plans::carry_in_flight(&self.backend, now).await?;
        let mut carry = BTreeMap::new();
        for b in accounts::balances(&self.backend, self.network, None).await? {
            let owed = b.due_sats - in_flight.get(&b.account).copied().unwrap_or(0) as i64;
            if owed > 0 && b.address.is_some() {
                carry.insert(b.account, owed as u64);
            }
        }
        let set = accounts::set_addresses(&self.backend).await?;
        let mut payees = BTreeMap::new();
        for account in weights.keys().chain(carry.keys()) {
            let Some(address) = accounts::address_of(account, self.network, &set) else {
                continue;
            };
            let Ok(parsed) =
                Address::from_str(&address).and_then(|a| a.require_network(self.network))
            else {
                continue;
            };
            payees.insert(
                account.clone(),
                Payee {
                    address,
                    script: parsed.script_pubkey(),
                },
            );
        }
        Ok(CoinbasePlan {
            tip: Some(template.prev_hash),
            weights,
            payees,
            carry,
            window: facts,
        })
    }
}
