//! Where work comes from: a [`TemplateSource`] publishes block templates and takes found blocks.
//!
//! The default source is the pool's own [`embedded::EmbeddedChain`]; a node's
//! `getblocktemplate` is the other. Everything downstream (jobs, sessions, validation) sees only
//! [`Template`], so adding a source touches nothing else.

pub mod block_file;
pub mod block_template;
pub mod branch;
pub mod coinbase;
pub mod embedded;
pub mod genesis;
pub mod metrics;
pub mod min_work;
pub mod node_rpc;
pub mod retarget;
pub mod rpc;
pub mod rules;
pub mod tree;

use std::sync::Arc;
use std::time::Instant;

use bitcoin::{Amount, Block, BlockHash, ScriptBuf, Transaction, Txid};
use futures::future::BoxFuture;
use protocol::{CompactTarget, Target, Version};
use tokio::sync::watch;

/// Everything needed to build jobs for the next block.
#[derive(Debug, Clone)]
pub struct Template {
    pub height: u64,
    pub prev_hash: BlockHash,
    pub version: Version,
    pub bits: CompactTarget,
    pub target: Target,
    /// Lowest ntime the block may carry (median time past + 1).
    pub min_time: u32,
    /// The source's idea of now when it built the template.
    pub cur_time: u32,
    /// Subsidy plus fees the coinbase may claim.
    pub coinbase_value: Amount,
    /// Transactions after the coinbase, in block order.
    pub transactions: Arc<Vec<Transaction>>,
    pub txids: Arc<Vec<Txid>>,
    /// Segwit commitment output script, when the block commits to witnesses.
    pub witness_commitment: Option<ScriptBuf>,
    pub created: Instant,
}

/// What became of a block we found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockVerdict {
    /// Now the tip (or accepted by the node).
    Accepted,
    /// The source already had it.
    Duplicate,
    /// Valid, but on a branch with no more work than the best chain (it lost a race, or a
    /// reorganisation left it behind): not counted as found.
    Orphaned,
    /// Refused, with the source's reason (`high-hash`, `bad-txnmrklroot`, ...).
    Rejected(String),
    /// The source could not say (unreachable, `inconclusive`).
    Unknown(String),
}

impl BlockVerdict {
    pub fn status(&self) -> &'static str {
        match self {
            BlockVerdict::Accepted => "accepted",
            BlockVerdict::Duplicate => "duplicate",
            BlockVerdict::Orphaned => "orphaned",
            BlockVerdict::Rejected(_) => "rejected",
            BlockVerdict::Unknown(_) => "unknown",
        }
    }

    pub fn detail(&self) -> Option<&str> {
        match self {
            BlockVerdict::Rejected(s) | BlockVerdict::Unknown(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the block counts as found.
    pub fn is_found(&self) -> bool {
        matches!(self, BlockVerdict::Accepted | BlockVerdict::Duplicate)
    }
}

/// A source of templates and a sink for found blocks.
pub trait TemplateSource: Send + Sync + 'static {
    /// The latest template; a new value means new work (new tip, new transactions).
    fn templates(&self) -> watch::Receiver<Arc<Template>>;

    /// Validate and submit a block found by a share.
    fn submit_block(&self, block: Block) -> BoxFuture<'_, BlockVerdict>;

    /// A short name for logs and the API (`embedded`, `node`).
    fn kind(&self) -> &'static str;

    /// How deep `hash` is in the best chain (1: the tip), or -1 when it is not on it (left
    /// behind by a reorganisation, or unknown): what rewards mature and are voided by.
    fn confirmations(&self, hash: BlockHash) -> BoxFuture<'_, Result<i64, String>>;
}
