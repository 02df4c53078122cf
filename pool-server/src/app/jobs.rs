//! Start-up of the job builder: the coinbase (its payee, tag and extranonce room) and, with
//! coinbase payouts, the planner that makes every job pay the window's accounts.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use bitcoin::{Address, ScriptBuf};
use tokio_util::sync::CancellationToken;

use super::chain::Templates;
use crate::chain::coinbase::CoinbaseBuilder;
use crate::config::Config;
use crate::jobs::{CoinbasePayouts, JobBuilder, JobFeed, JobIds};
use crate::rewards::coinbase_plan::PlanSettings;
use crate::rewards::planner::Planner;
use crate::rewards::{PayoutMethod, RewardConfig};
use crate::store::Store;

/// The jobs miners get.
pub struct Work {
    pub feed: JobFeed,
    pub ids: JobIds,
    /// Every job's coinbase pays the window's accounts (`--payout-method coinbase`).
    pub coinbase_payouts: bool,
}

pub async fn start(
    cfg: &Config,
    payout: ScriptBuf,
    store: &Store,
    templates: &Templates,
    rewards: &RewardConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<Work> {
    let coinbase = CoinbaseBuilder::new(
        payout,
        &cfg.rewards.pool_tag,
        cfg.stratum.extranonce1_size as usize + cfg.stratum.extranonce2_size as usize,
    );
    let ids = JobIds::default();
    let mut builder = JobBuilder::new(coinbase, ids.clone());
    let coinbase_payouts = cfg.rewards.payout_method == PayoutMethod::Coinbase;
    if coinbase_payouts {
        builder = builder.paying_in_coinbase(
            coinbase_payouts_of(cfg, store, templates, rewards, shutdown).await?,
        );
    }
    let feed = builder.spawn(
        templates.source.templates(),
        cfg.stratum.job_refresh,
        shutdown.clone(),
    );
    Ok(Work {
        feed,
        ids,
        coinbase_payouts,
    })
}

/// The planner (the window read from the store for every job) and how its plans become
/// outputs.
async fn coinbase_payouts_of(
    cfg: &Config,
    store: &Store,
    templates: &Templates,
    rewards: &RewardConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<CoinbasePayouts> {
    let r = &cfg.rewards;
    let fee_address = r.pool_fee_address.as_deref().unwrap_or_default();
    let pool_script = Address::from_str(fee_address)
        .with_context(|| format!("--pool-fee-address {fee_address:?} is not an address"))?
        .require_network(r.network)
        .with_context(|| format!("--pool-fee-address is not a {} address", r.network))?
        .script_pubkey();
    let plans = Planner::new(
        store.backend.clone(),
        templates.source.templates(),
        templates.source.kind(),
        rewards.clone(),
        r.network,
        r.plan_interval,
        cfg.store.store_flush + Duration::from_secs(1),
    )
    .spawn(shutdown.clone())
    .await;
    tracing::info!(
        dust_limit = %r.dust_limit,
        max_outputs = r.max_coinbase_outputs,
        "coinbase payouts on: every job pays the window's accounts"
    );
    Ok(CoinbasePayouts {
        plans,
        settings: PlanSettings {
            fee_bps: r.pool_fee.0,
            dust_sats: r.dust_limit.to_sat(),
            max_outputs: r.max_coinbase_outputs as usize,
            pool_script,
        },
        rebuild_bps: r.coinbase_rebuild_change.0,
    })
}
