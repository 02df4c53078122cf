//! The planner (`--payout-method coinbase`): reads the current window from the store and
//! publishes it as a [`CoinbasePlan`] for the job builder, every `--plan-interval` and at
//! every new tip.
//!
//! The window is the scheme's, read as if a block were found now: PPLNS walks back
//! `--pplns-window` x the current network difficulty of accepted work from the newest share;
//! PROP counts the work since the previous credited block. Carries are the accounts' mature
//! balances (`due`), less what coinbases of blocks found but not yet credited already carry.
//! A plan read for one tip carries balances on that tip only (see [`super::coinbase_plan`]).
//!
//! The window is walked once and then kept in memory ([`RollingWindow`]): each read adds the
//! shares received since the last one (summed by the database) and drops what the window no
//! longer reaches, so a read costs the new shares, not the window. Shares stored later than
//! `lag` after they were received (a pool-server whose store was away) count from the next
//! walk: at start, when PROP's previous block changes, or when PPLNS's window grows.

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
use super::rolling_window::RollingWindow;
use super::scheme::Work;
use super::window::{self, Anchor, Reach};
use super::{accounts, block_plans, RewardConfig, Scheme};
use crate::chain::Template;
use crate::store::Backend;

/// Buckets kept at most (see [`RollingWindow`]).
const MAX_BUCKETS: usize = 256;

/// What the kept window was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basis {
    /// PPLNS with this much work.
    Pplns(Work),
    /// PROP since the previous block's share (its time).
    Prop(Option<i64>),
}

struct HeldWindow {
    buckets: RollingWindow,
    /// Shares before this time are in the buckets.
    read_to_us: i64,
    basis: Basis,
}

pub struct Planner {
    pub backend: Backend,
    pub templates: watch::Receiver<Arc<Template>>,
    /// The template source's kind (`embedded`, `node`): PROP's previous block is of it.
    pub chain: &'static str,
    pub cfg: RewardConfig,
    pub network: bitcoin::Network,
    pub interval: Duration,
    /// How far behind now the window is read (the store's batching).
    pub lag: Duration,
    held: Option<HeldWindow>,
}

impl Planner {
    pub fn new(
        backend: Backend,
        templates: watch::Receiver<Arc<Template>>,
        chain: &'static str,
        cfg: RewardConfig,
        network: bitcoin::Network,
        interval: Duration,
        lag: Duration,
    ) -> Planner {
        Planner {
            backend,
            templates,
            chain,
            cfg,
            network,
            interval,
            lag,
            held: None,
        }
    }

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
    pub async fn read(&mut self, now: DateTime<Utc>) -> anyhow::Result<CoinbasePlan> {
        let template = self.templates.borrow().clone();
        // Shares are read up to a little before now: the store writes them in batches.
        let upto = now.timestamp_micros() - i64::try_from(self.lag.as_micros()).unwrap_or(0);
        let floor = upto
            - i64::try_from(self.cfg.share_retention.as_micros()).unwrap_or(i64::MAX / 2)
            - 86_400_000_000;
        let (window_difficulty, basis, reach) = match self.cfg.scheme {
            Scheme::Pplns => {
                let d = self.cfg.pplns_window * template.target.difficulty().as_f64();
                let w = Work::of_difficulty(d);
                (d, Basis::Pplns(w), Reach::Work(w))
            }
            Scheme::Prop | Scheme::Solo => {
                let prev = window::previous_block_anchor(&self.backend, self.chain, upto).await?;
                (
                    0.0,
                    Basis::Prop(prev.map(|a| a.at_micros)),
                    prev.map_or(Reach::Work(Work(u128::MAX)), Reach::Since),
                )
            }
        };
        // Walk the whole window when there is none yet, when PROP's previous block moved, or
        // when PPLNS asks for more work than was kept; else read only the new shares.
        let rebuild = match (&self.held, basis) {
            (Some(h), Basis::Pplns(w)) => matches!(h.basis, Basis::Pplns(kept) if kept < w),
            (Some(h), b) => h.basis != b,
            (None, _) => true,
        };
        if rebuild {
            let mut buckets = RollingWindow::new(MAX_BUCKETS);
            let anchor = Anchor {
                at_micros: upto - 1,
                id: Uuid::max(),
            };
            window::walk_into(&self.backend, anchor, reach, floor, Some(&mut buckets)).await?;
            self.held = Some(HeldWindow {
                buckets,
                read_to_us: upto,
                basis,
            });
        } else if let Some(h) = self.held.as_mut() {
            if upto > h.read_to_us {
                let (weights, shares) =
                    window::work_between(&self.backend, h.read_to_us, upto).await?;
                if shares > 0 {
                    h.buckets.push(h.read_to_us, upto, weights, shares);
                }
                h.read_to_us = upto;
            }
        }
        let h = self.held.as_mut().expect("held");
        // A PPLNS window that shrank keeps less from now on (growing again walks anew).
        h.basis = basis;
        let held = match basis {
            Basis::Pplns(w) => {
                h.buckets.trim(w);
                h.buckets.window(w)
            }
            Basis::Prop(_) => h.buckets.window(Work(u128::MAX)),
        };
        let (mut weights, mut credited, mut shares, mut oldest) =
            (held.weights, held.credited, held.shares, held.oldest_us);
        // The bucket the edge falls in is counted share by share, as a fresh walk would.
        if let Some(edge) = held.edge {
            let anchor = Anchor {
                at_micros: edge.hi_us - 1,
                id: Uuid::max(),
            };
            let walked =
                window::walk(&self.backend, anchor, Reach::Work(edge.left), edge.lo_us).await?;
            credited.0 = credited.0.saturating_add(walked.fill.credited.0);
            shares += walked.fill.shares;
            oldest = walked.oldest_micros.or(oldest);
            for (account, w) in walked.fill.into_weights() {
                let e = weights.entry(account).or_default();
                e.0 = e.0.saturating_add(w.0);
            }
        }
        let facts = WindowFacts {
            window_difficulty,
            credited_difficulty: credited.as_difficulty(),
            shares,
            window_start_us: oldest,
            window_end_us: upto,
        };
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
        tracing::debug!(
            tip = %template.prev_hash,
            accounts = weights.len(),
            payees = payees.len(),
            carried_accounts = carry.len(),
            carry_sats = carry.values().sum::<u64>(),
            "payout window read"
        );
        Ok(CoinbasePlan {
            tip: Some(template.prev_hash),
            weights,
            payees,
            carry,
            window: facts,
        })
    }
}
