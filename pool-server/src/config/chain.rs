//! The pool's own chain (the default template source): its genesis and retargeting.

use std::time::Duration;

use clap::Args;
use protocol::CompactTarget;

use super::parse::{parse_compact, parse_interval, parse_network_name, parse_work};

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Embedded chain")]
pub struct ChainArgs {
    /// Embedded chain: nBits of the genesis block (hex); the default suits one laptop worker
    /// finding a block about every 30 s.
    #[arg(long, env = "POOL_GENESIS_BITS", default_value = "1d01fffe", value_parser = parse_compact)]
    pub genesis_bits: CompactTarget,

    /// Embedded chain: the easiest bits any block may carry (hex). By default the genesis bits:
    /// the chain never gets easier than it began, so a fork cannot retarget itself down to
    /// free blocks. Another value (no harder than --genesis-bits) is written into the genesis:
    /// every node of the network must be given the same.
    #[arg(long, env = "POOL_POW_LIMIT", value_parser = parse_compact)]
    pub pow_limit: Option<CompactTarget>,

    /// Embedded chain: a peer's branch that leaves the best chain more than this many blocks
    /// below the tip is refused, whatever its work (default: --maturity, so a block whose
    /// credits matured is never reorganised away).
    #[arg(long, env = "POOL_MAX_FORK_DEPTH", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_fork_depth: Option<u64>,

    /// Embedded chain: the cumulative work (hex, as Bitcoin Core's -minimumchainwork) below
    /// which the node stores no peer's block: a node syncing from scratch first sees headers
    /// with this much work, keeping almost nothing of them, before it fetches a body. Default:
    /// the value built in for the network (see `chain::min_work`), else none.
    #[arg(long, env = "POOL_MIN_CHAIN_WORK", value_parser = parse_work)]
    pub min_chain_work: Option<bitcoin::Work>,

    /// Embedded chain: the network's name. With --genesis-bits it makes the genesis block, so
    /// pool-servers given the same two hold the same chain (and can peer); another name is
    /// another chain.
    #[arg(long, env = "POOL_P2P_NETWORK", default_value = "rust-pool", value_parser = parse_network_name)]
    pub p2p_network: String,

    /// Embedded chain: the block time difficulty retargeting aims at.
    #[arg(long, env = "POOL_BLOCK_TIME", default_value = "30s", value_parser = parse_interval)]
    pub block_time: Duration,

    /// Embedded chain: retarget every N blocks (Bitcoin: 2016), clamped to x4 either way.
    #[arg(long, env = "POOL_RETARGET_INTERVAL", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub retarget_interval: u32,
}
