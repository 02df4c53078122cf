//! Start-up of rewards: the ledger credits found blocks and follows their confirmations;
//! with `--payout-method wallet`, the node's wallet pays what is due.

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::chain::Templates;
use crate::chain::rpc::RpcClient;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::rewards::ledger::Ledger;
use crate::rewards::payout::WalletPayouts;
use crate::rewards::{PayoutMethod, RewardConfig};
use crate::store::Store;

/// The reward rules the flags choose.
pub fn config(cfg: &Config) -> RewardConfig {
    let r = &cfg.rewards;
    RewardConfig {
        scheme: r.reward_scheme,
        pplns_window: r.pplns_window,
        fee_bps: r.pool_fee.0,
        maturity: r.maturity,
        credit_delay: r.credit_delay,
        share_retention: cfg.store.share_retention,
    }
}

/// The reward tasks, awaited at shutdown.
pub struct Rewards {
    pub ledger: JoinHandle<()>,
    pub payouts: Option<JoinHandle<()>>,
}

pub fn start(
    cfg: &Config,
    rules: RewardConfig,
    store: &Store,
    templates: &Templates,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> Rewards {
    let ledger = Ledger {
        backend: store.backend.clone(),
        source: templates.source.clone(),
        cfg: rules,
        metrics: metrics.rewards.clone(),
    }
    .spawn(shutdown.clone());
    let r = &cfg.rewards;
    let payouts = match (r.payout_method, &templates.node) {
        (PayoutMethod::Wallet, Some(node)) => {
            let rpc = RpcClient::new(node.clone());
            let wallet = match &r.node_wallet {
                Some(name) => rpc.for_wallet(name),
                None => rpc,
            };
            tracing::info!(
                interval = ?r.payout_interval,
                threshold = %r.payout_threshold,
                "wallet payouts on"
            );
            Some(
                WalletPayouts {
                    backend: store.backend.clone(),
                    wallet,
                    network: r.network,
                    interval: r.payout_interval,
                    threshold_sats: r.payout_threshold.to_sat() as i64,
                    metrics: metrics.rewards.clone(),
                }
                .spawn(shutdown.clone()),
            )
        }
        _ => None,
    };
    Rewards { ledger, payouts }
}
