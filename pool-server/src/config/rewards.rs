//! Who the coinbase pays, how each block's reward is shared among accounts, and how balances are
//! paid.

use std::time::Duration;

use clap::Args;

use super::parse::{parse_coins, parse_duration, parse_fee, parse_interval, parse_window, FeeBps};

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Rewards and payouts")]
pub struct RewardArgs {
    /// Bitcoin network for payout and account address checks.
    #[arg(long, env = "POOL_NETWORK", default_value = "regtest")]
    pub network: bitcoin::Network,

    /// Address the coinbase pays.
    #[arg(long, env = "POOL_PAYOUT_ADDRESS")]
    pub payout_address: Option<String>,

    /// Raw output script (hex) the coinbase pays, instead of an address.
    #[arg(long, env = "POOL_PAYOUT_SCRIPT", conflicts_with = "payout_address")]
    pub payout_script: Option<String>,

    /// Tag written into every coinbase scriptSig.
    #[arg(long, env = "POOL_TAG", default_value = "/rust-pool/")]
    pub pool_tag: String,

    /// How each found block's reward is shared among accounts: `pplns` (the last
    /// --pplns-window x network difficulty of accepted work), `prop` (the work since the
    /// pool's previous block) or `solo` (the finder's account).
    #[arg(long, env = "POOL_REWARD_SCHEME", value_enum, default_value = "pplns")]
    pub reward_scheme: crate::rewards::Scheme,

    /// PPLNS window, in multiples of the block's network difficulty.
    #[arg(long, env = "POOL_PPLNS_WINDOW", default_value_t = 2.0, value_parser = parse_window)]
    pub pplns_window: f64,

    /// The pool's fee, in percent of each block's reward (`1`, `0.9`, `1.5%`; at most two
    /// decimals).
    #[arg(long, env = "POOL_FEE", default_value = "0", value_parser = parse_fee)]
    pub pool_fee: FeeBps,

    /// Confirmations before a block's credits are mature (paid out): on a node, its
    /// `getblock` confirmations; on the embedded chain, the block's depth.
    #[arg(long, env = "POOL_MATURITY", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub maturity: u32,

    /// How long after a block is found its credits are computed, so shares still on their way
    /// from other pool-servers on the same database are counted.
    #[arg(long, env = "POOL_CREDIT_DELAY", default_value = "10s", value_parser = parse_duration)]
    pub credit_delay: Duration,

    /// How balances are paid: `none` (kept and shown), `wallet` (the node's wallet pays
    /// them with `sendmany`; needs --node-rpc-url and a wallet holding the coinbases) or
    /// `coinbase` (every job's coinbase pays the window's accounts directly; needs
    /// --pool-fee-address; not with --reward-scheme solo).
    #[arg(long, env = "POOL_PAYOUT_METHOD", value_enum, default_value = "none")]
    pub payout_method: crate::rewards::PayoutMethod,

    /// Wallet payouts: how often due balances are paid.
    #[arg(long, env = "POOL_PAYOUT_INTERVAL", default_value = "10m", value_parser = parse_interval)]
    pub payout_interval: Duration,

    /// Wallet payouts: smallest balance paid, in coins (`0.01`); smaller ones wait.
    #[arg(long, env = "POOL_PAYOUT_THRESHOLD", default_value = "0.01", value_parser = parse_coins)]
    pub payout_threshold: bitcoin::Amount,

    /// Wallet payouts: the node's wallet to pay from, when it has several loaded.
    #[arg(long, env = "POOL_NODE_WALLET")]
    pub node_wallet: Option<String>,

    /// Coinbase payouts: the pool's own output (the fee, and what is not paid out: dust,
    /// accounts without an address, past --max-coinbase-outputs), an address of --network.
    #[arg(long, env = "POOL_POOL_FEE_ADDRESS")]
    pub pool_fee_address: Option<String>,

    /// Coinbase payouts: no output below this, in coins; the amount waits as balance and is
    /// carried into a later coinbase.
    #[arg(long, env = "POOL_DUST_LIMIT", default_value = "0.0001", value_parser = parse_coins)]
    pub dust_limit: bitcoin::Amount,

    /// Coinbase payouts: at most this many account outputs per coinbase (the largest); the
    /// rest wait as balance. Some mining firmware limits the coinbase's size.
    #[arg(long, env = "POOL_MAX_COINBASE_OUTPUTS", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub max_coinbase_outputs: u32,

    /// Coinbase payouts: how often the window is read again from the store (also at every
    /// new block).
    #[arg(long, env = "POOL_PLAN_INTERVAL", default_value = "15s", value_parser = parse_interval)]
    pub plan_interval: Duration,

    /// Coinbase payouts: a new read of the window rebuilds the job when an output moves by at
    /// least this much of the reward, in percent (or when accounts gain or lose an output).
    #[arg(long, env = "POOL_COINBASE_REBUILD_CHANGE", default_value = "1", value_parser = parse_fee)]
    pub coinbase_rebuild_change: FeeBps,
}
