//! Rewards: who is owed what for the blocks the pool finds, and paying them.
//!
//! A found block flows chain -> store -> here: [`ledger`] credits each block once, by the
//! [`scheme`] (the pure split: PPLNS, PROP, SOLO; integer satoshis; a fixed rule for the
//! remainder) over the shares [`window`] reads back from the store, and follows its
//! confirmations to maturity or to void; [`accounts`] sums balances from the ledger and the
//! payouts; [`payout`] pays due balances from the node's wallet, never twice. Under coinbase
//! payouts, [`planner`] reads the window for every job and [`coinbase_plan`] turns it into the
//! coinbase's outputs; the plan of the job that found a block is kept ([`block_plans`]) and
//! credited as it was paid.

pub mod accounts;
pub mod block_plans;
pub mod coinbase_plan;
pub mod ledger;
pub mod metrics;
pub mod payout;
pub mod planner;
pub mod rolling_window;
pub mod scheme;
pub mod window;

use std::time::Duration;

/// How a block's reward is shared (`--reward-scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheme {
    /// Over the last `--pplns-window` x network difficulty of accepted work.
    Pplns,
    /// Over the accepted work since the pool's previous block.
    Prop,
    /// The finder's account takes it.
    Solo,
}

impl Scheme {
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::Pplns => "pplns",
            Scheme::Prop => "prop",
            Scheme::Solo => "solo",
        }
    }
}

/// How balances are paid (`--payout-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PayoutMethod {
    /// Balances are kept and shown; the operator pays.
    None,
    /// From the node's wallet, in one `sendmany` per `--payout-interval`.
    Wallet,
    /// In every job's coinbase: one output per account of the window (non-custodial).
    Coinbase,
}

/// The ledger's settings.
#[derive(Debug, Clone)]
pub struct RewardConfig {
    pub scheme: Scheme,
    /// PPLNS: the window in multiples of the block's network difficulty.
    pub pplns_window: f64,
    /// The pool's fee in basis points (1/100 of a percent).
    pub fee_bps: u32,
    /// Confirmations before a block's credits are final.
    pub maturity: u32,
    /// How long after a block is found its credits are computed.
    pub credit_delay: Duration,
    /// How far back shares can be (the walk looks no further).
    pub share_retention: Duration,
}
