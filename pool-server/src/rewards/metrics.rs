//! The rewards' own Prometheus series (credits, balances by state, payouts), registered into
//! the pool's one registry by whoever starts the ledger and the payouts.

use prometheus::{
    register_gauge_with_registry, register_int_counter_vec_with_registry,
    register_int_counter_with_registry, register_int_gauge_vec_with_registry, Gauge, IntCounter,
    IntCounterVec, IntGaugeVec, Registry,
};

#[derive(Clone)]
pub struct RewardMetrics {
    pub blocks_credited: IntCounterVec,
    pub rewards_sats: IntGaugeVec,
    pub payouts: IntCounterVec,
    pub payout_sats: IntCounter,
    pub payout_last_success: Gauge,
}

impl RewardMetrics {
    pub fn register(r: &Registry) -> prometheus::Result<RewardMetrics> {
        let m = RewardMetrics {
            blocks_credited: register_int_counter_vec_with_registry!(
                "pool_blocks_credited_total",
                "Blocks whose reward was shared among accounts, by scheme",
                &["scheme"],
                r
            )?,
            rewards_sats: register_int_gauge_vec_with_registry!(
                "pool_rewards_sats",
                "Satoshis owed to accounts, by state: immature, due (mature and unpaid), pending (in a payout not yet confirmed sent), in_coinbase (paid by coinbases of blocks not mature yet)",
                &["state"],
                r
            )?,
            payouts: register_int_counter_vec_with_registry!(
                "pool_payouts_total",
                "Payout runs by result: sent, failed (the node refused; retried), unknown (no answer; reconciled with the wallet)",
                &["result"],
                r
            )?,
            payout_sats: register_int_counter_with_registry!(
                "pool_payout_sats_total",
                "Satoshis paid to accounts",
                r
            )?,
            payout_last_success: register_gauge_with_registry!(
                "pool_payout_last_success_timestamp_seconds",
                "When a payout was last sent (unix seconds)",
                r
            )?,
        };
        for result in ["sent", "failed", "unknown"] {
            m.payouts.with_label_values(&[result]);
        }
        for state in ["immature", "due", "pending", "in_coinbase"] {
            m.rewards_sats.with_label_values(&[state]);
        }
        for scheme in ["pplns", "prop", "solo"] {
            m.blocks_credited.with_label_values(&[scheme]);
        }
        Ok(m)
    }
}
