//! Wallet payouts (`--payout-method wallet`): every `--payout-interval`, the balances due at or
//! above `--payout-threshold` are paid in one `sendmany` from the node's wallet.
//!
//! Crash-safe and idempotent, in this order:
//! 1. **Reconcile** every payout still `pending` against the wallet: its `sendmany` carried the
//!    comment `pool payout <id>`, so `listtransactions` tells whether it was made. Found: `sent`
//!    with its txid. Not found is no proof by itself: a `sendmany` the client gave up on may
//!    still be queued in the node (behind a rescan, a slow disk, a proxy) and go out later. It
//!    is `failed`, and its balances due again, only when the wallet proves it never will be
//!    made: the node has restarted since the payout was recorded (its `uptime` is shorter
//!    than the payout's age: a call in flight died with the old process) and the restarted
//!    wallet does not hold it. Until then its balances stay held, nothing new is sent, and
//!    `PoolPayoutPending` tells the operator.
//! 2. **Record** the new payout as `pending`, with its id and one item per account, in one
//!    transaction: from here its amounts no longer count as due.
//! 3. **Send** it once (`sendmany` is never retried blindly). The txid: `sent`. The node's
//!    refusal (no funds, a bad address) or no connection at all (nothing sent): `failed`
//!    with its reason, retried later with backoff, balances untouched. No answer (a timeout,
//!    a reset after the request went out): left `pending` for step 1.
//!
//! A kill at any point leaves either no payout, a pending one that step 1 resolves from the
//! wallet, or a sent one: no balance is ever paid twice. One pool-server pays per database:
//! on PostgreSQL it holds an advisory lock for as long as it runs (another waits); SQLite has
//! one process.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::accounts;
use super::metrics::RewardMetrics;
use crate::chain::rpc::{RpcClient, RpcError};
use crate::store::{Backend, Dialect};
use crate::with_pool;

/// How long the node must have been down before a payout recorded just ahead of its restart
/// counts as older than the restart (clocks of pool and node read a second apart).
const RESTART_SLACK: Duration = Duration::from_secs(5);
const SEND_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a pending payout is looked for in the wallet again.
const RECHECK: Duration = Duration::from_secs(15);
/// Longest wait between failed runs.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Wallet transactions read per `listtransactions` page.
const PAGE: usize = 200;

pub struct WalletPayouts {
    pub backend: Backend,
    pub wallet: RpcClient,
    pub network: bitcoin::Network,
    pub interval: Duration,
    pub threshold_sats: i64,
    pub metrics: RewardMetrics,
}

/// What one run did.
#[derive(Debug, Clone, PartialEq)]
pub enum Run {
    /// Nothing due.
    Nothing,
    /// Paid: the payout id and txid.
    Sent { id: String, txid: String },
    /// The node refused; balances stay due.
    Failed { id: String, reason: String },
    /// A payout is pending and not yet resolved: nothing new was sent.
    Waiting { id: String },
}

/// The comment a payout's transaction carries in the wallet.
fn comment(id: &str) -> String {
    format!("pool payout {id}")
}

/// Satoshis as the coin amount JSON-RPC takes. Exact: every integer below 2^53 divided by
/// 10^8 prints (shortest round-trip form) as its 8-decimal value.
pub fn coins(sats: i64) -> Value {
    json!(sats as f64 / 100_000_000.0)
}

impl WalletPayouts {
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let _lock = tokio::select! {
                _ = shutdown.cancelled() => return,
                l = crate::store::leader::hold(
                    &self.backend,
                    "pool_wallet_payouts",
                    "makes the wallet payouts",
                    self.interval.min(Duration::from_secs(30)),
                ) => l,
            };
            let mut wait = Duration::ZERO;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = match self.run(Utc::now()).await {
                    Ok(Run::Nothing | Run::Sent { .. }) => self.interval,
                    Ok(Run::Waiting { .. }) => self.interval.min(RECHECK),
                    Ok(Run::Failed { .. }) => (wait * 2).clamp(self.interval, MAX_BACKOFF),
                    Err(e) => {
                        tracing::warn!(error = %e, "payout run could not complete; retrying");
                        (wait * 2).clamp(self.interval.min(RECHECK), MAX_BACKOFF)
                    }
                };
            }
        })
    }

    /// One run: reconcile, then pay what is due.
    pub async fn run(&self, now: DateTime<Utc>) -> anyhow::Result<Run> {
        if let Some(waiting) = self.reconcile(now).await? {
            return Ok(Run::Waiting { id: waiting });
        }
        let due: Vec<accounts::Balance> = accounts::balances(&self.backend, self.network, None)
            .await?
            .into_iter()
            .filter(|b| b.due_sats > 0 && b.due_sats >= self.threshold_sats)
            .filter(|b| b.address.is_some())
            .collect();
        if due.is_empty() {
            return Ok(Run::Nothing);
        }
        let id = Uuid::now_v7().to_string();
        let total: i64 = due.iter().map(|b| b.due_sats).sum();
        with_pool!(&self.backend, p => {
            let mut tx = p.begin().await?;
            sqlx::query(&p.sql(
                "INSERT INTO payouts (id, method, state, total_sats, created_at)
                 VALUES ($1, 'wallet', 'pending', $2, $3)",
            ))
            .bind(&id)
            .bind(total)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for b in &due {
                sqlx::query(&p.sql(
                    "INSERT INTO payout_items (payout_id, account, address, sats)
                     VALUES ($1, $2, $3, $4)",
                ))
                .bind(&id)
                .bind(&b.account)
                .bind(b.address.as_deref())
                .bind(b.due_sats)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        tracing::info!(payout = %id, accounts = due.len(), total_sats = total, "payout recorded as pending; sending");
        // Several accounts may share an address: one amount per address.
        let mut amounts = std::collections::BTreeMap::<String, i64>::new();
        for b in &due {
            *amounts
                .entry(b.address.clone().expect("filtered"))
                .or_default() += b.due_sats;
        }
        let outputs: serde_json::Map<String, Value> = amounts
            .into_iter()
            .map(|(a, sats)| (a, coins(sats)))
            .collect();
        let sent = self
            .wallet
            .call_once(
                "sendmany",
                json!(["", outputs, 1, comment(&id)]),
                SEND_TIMEOUT,
            )
            .await;
        match sent {
            Ok(v) => {
                let txid = v.as_str().unwrap_or_default().to_owned();
                self.settle(&id, "sent", Some(&txid), None, Utc::now())
                    .await?;
                self.metrics.payouts.with_label_values(&["sent"]).inc();
                self.metrics.payout_sats.inc_by(total as u64);
                self.metrics
                    .payout_last_success
                    .set(Utc::now().timestamp() as f64);
                tracing::info!(payout = %id, txid = %txid, total_sats = total, "payout sent");
                Ok(Run::Sent { id, txid })
            }
            Err(e @ (RpcError::Node { .. } | RpcError::Unreached(_))) => {
                let reason = e.to_string();
                self.settle(&id, "failed", None, Some(&reason), Utc::now())
                    .await?;
                self.metrics.payouts.with_label_values(&["failed"]).inc();
                tracing::error!(payout = %id, reason = %reason, "payout refused by the node; balances stay due, retried with backoff");
                Ok(Run::Failed { id, reason })
            }
            Err(e) => {
                self.metrics.payouts.with_label_values(&["unknown"]).inc();
                tracing::warn!(payout = %id, error = %e, "no answer to the payout; it stays pending until the wallet says whether it was made");
                Ok(Run::Waiting { id })
            }
        }
    }

    async fn settle(
        &self,
        id: &str,
        state: &str,
        txid: Option<&str>,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        with_pool!(&self.backend, p => sqlx::query(&p.sql(
            "UPDATE payouts SET state = $2, txid = $3, detail = $4, settled_at = $5
             WHERE id = $1 AND state = 'pending'",
        ))
        .bind(id)
        .bind(state)
        .bind(txid)
        .bind(detail)
        .bind(now)
        .execute(p)
        .await?
        .rows_affected());
        Ok(())
    }

    /// Resolve pending payouts from the wallet; the id of one still unresolved, if any.
    async fn reconcile(&self, now: DateTime<Utc>) -> anyhow::Result<Option<String>> {
        let pending: Vec<(String, DateTime<Utc>)> = with_pool!(&self.backend, p => sqlx::query_as(&p.sql(
            "SELECT id, created_at FROM payouts WHERE state = 'pending' ORDER BY created_at",
        ))
        .fetch_all(p)
        .await?);
        let Some(oldest) = pending.iter().map(|(_, at)| *at).min() else {
            return Ok(None);
        };
        let made = self.wallet_payouts(oldest).await?;
        // When the node last started: a payout recorded before that, and not in the wallet now,
        // was never made (its call, if it ever reached the node, died with the old process).
        let uptime = self
            .wallet
            .call("uptime", json!([]), Duration::from_secs(30))
            .await?
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("uptime: not a number of seconds"))?;
        let node_started = now
            - chrono::Duration::seconds(uptime)
            - chrono::Duration::from_std(RESTART_SLACK).unwrap_or_default();
        let mut unresolved = None;
        for (id, created) in pending {
            if let Some(txid) = made.get(&comment(&id)) {
                self.settle(&id, "sent", Some(txid), Some("found in the wallet"), now)
                    .await?;
                self.metrics.payouts.with_label_values(&["sent"]).inc();
                self.metrics.payout_last_success.set(now.timestamp() as f64);
                tracing::info!(payout = %id, txid = %txid, "pending payout found in the wallet: sent");
            } else if created < node_started {
                self.settle(
                    &id,
                    "failed",
                    None,
                    Some("never made: not in the wallet, and the node restarted since it was sent"),
                    now,
                )
                .await?;
                self.metrics.payouts.with_label_values(&["failed"]).inc();
                tracing::warn!(payout = %id, "pending payout is not in the wallet of a node restarted since: it was never made; its balances are due again");
            } else {
                tracing::info!(payout = %id, "pending payout not in the wallet yet; its balances stay held until the wallet shows it or the node restarts");
                unresolved = Some(id);
            }
        }
        Ok(unresolved)
    }

    /// Comment -> txid of the wallet's sends since `since` (an hour of slack for clocks).
    async fn wallet_payouts(
        &self,
        since: DateTime<Utc>,
    ) -> anyhow::Result<std::collections::HashMap<String, String>> {
        let horizon = since.timestamp() - 3600;
        let mut found = std::collections::HashMap::new();
        let mut skip = 0usize;
        loop {
            let page = self
                .wallet
                .call(
                    "listtransactions",
                    json!(["*", PAGE, skip, true]),
                    Duration::from_secs(30),
                )
                .await?;
            let entries = page.as_array().cloned().unwrap_or_default();
            let mut older = false;
            for e in &entries {
                if let (Some(c), Some(txid)) = (e["comment"].as_str(), e["txid"].as_str()) {
                    if c.starts_with("pool payout ") {
                        found.insert(c.to_owned(), txid.to_owned());
                    }
                }
                if e["time"].as_i64().is_some_and(|t| t < horizon) {
                    older = true;
                }
            }
            if entries.len() < PAGE || older {
                return Ok(found);
            }
            skip += PAGE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact_in_coins() {
        for sats in [
            1i64,
            10,
            12_345_678,
            99_999_999,
            100_000_000,
            2_099_999_997_690_000,
            1_234_567_891,
        ]
        .into_iter()
        .chain((0..10_000).map(|i| i * 7_919 + 3))
        {
            let text = coins(sats).to_string();
            let (whole, frac) = match text.split_once('.') {
                Some((w, f)) => (w.to_owned(), f.to_owned()),
                None if text.contains('e') => {
                    let v: f64 = text.parse().unwrap();
                    assert_eq!((v * 1e8).round() as i64, sats, "{text}");
                    continue;
                }
                None => (text.clone(), String::new()),
            };
            assert!(frac.len() <= 8, "{text}");
            let back = whole.parse::<i64>().unwrap() * 100_000_000
                + format!("{frac:0<8}").parse::<i64>().unwrap();
            assert_eq!(back, sats, "{text}");
        }
    }
}
