//! The coinbase plans of found blocks, as stored: what the job that found a block paid, kept
//! so the ledger credits the block from it (never from a window recomputed later), and so
//! planners know which carried balances a block not yet credited has already paid.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::coinbase_plan::PaidCoinbase;
use crate::store::{Backend, Dialect};
use crate::with_pool;

/// How long a plan whose block never showed up (or is not credited yet) still holds its
/// carries back.
const IN_FLIGHT_FOR: chrono::Duration = chrono::Duration::days(1);

/// Store `plan` as the plan of `block_hash` (a second write of the same block adds nothing).
pub async fn record(
    backend: &Backend,
    block_hash: &str,
    plan: &PaidCoinbase,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let text = serde_json::to_string(plan)?;
    with_pool!(backend, p => sqlx::query(&p.sql(
        "INSERT INTO block_plans (block_hash, plan, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (block_hash) DO NOTHING",
    ))
    .bind(block_hash)
    .bind(text)
    .bind(now)
    .execute(p)
    .await?
    .rows_affected());
    Ok(())
}

/// The plan of `block_hash`, when its job paid in the coinbase.
pub async fn plan_of(backend: &Backend, block_hash: &str) -> anyhow::Result<Option<PaidCoinbase>> {
    let text: Option<String> = with_pool!(backend, p => sqlx::query_scalar(&p.sql(
        "SELECT plan FROM block_plans WHERE block_hash = $1",
    ))
    .bind(block_hash)
    .fetch_optional(p)
    .await?);
    text.map(|t| serde_json::from_str(&t).map_err(anyhow::Error::from))
        .transpose()
}

/// Balances carried into coinbases of blocks that are found but not credited yet (and not
/// known to have been refused or orphaned), by account: the ledger's balances do not show
/// them yet, so a planner subtracts them.
pub async fn carry_in_flight(
    backend: &Backend,
    now: DateTime<Utc>,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let rows: Vec<String> = with_pool!(backend, p => sqlx::query_scalar(&p.sql(
        "SELECT p.plan FROM block_plans p LEFT JOIN blocks b ON b.hash = p.block_hash
         WHERE p.created_at > $1
           AND NOT EXISTS (SELECT 1 FROM block_rewards r WHERE r.block_hash = p.block_hash)
           AND (b.status IS NULL OR b.status NOT IN ('rejected', 'orphaned'))",
    ))
    .bind(now - IN_FLIGHT_FOR)
    .fetch_all(p)
    .await?);
    let mut out = BTreeMap::new();
    for text in rows {
        let plan: PaidCoinbase = serde_json::from_str(&text)?;
        for c in plan.credits.iter().filter(|c| c.carry_sats > 0) {
            *out.entry(c.account.clone()).or_insert(0) += c.carry_sats;
        }
    }
    Ok(out)
}
