//! The pool's own chain: Bitcoin-format blocks, Bitcoin's difficulty retargeting, and a small
//! mempool fed through the API, so a pool can run end to end with no node at all. With
//! `--p2p-listen` / `--peer` it is one node of a network of pools (see `crate::p2p`).
//!
//! Every block, found here or sent by a peer, is checked as a node would check it (proof of
//! work, bits by the retarget rule on its own branch, time rules, merkle root, BIP 34 height,
//! coinbase amount, weight, duplicates) before it is stored. What it does not have is a UTXO
//! set: fed transactions are checked for form, not for their inputs. Blocks live in a
//! [`BlockTree`] (the best chain is the one with most work; a heavier branch is a
//! reorganisation), blocks whose parent is unknown wait in an [`OrphanPool`], and every stored
//! block is kept in the [`BlockFile`], from which [`EmbeddedChain::open`] rebuilds the tree.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, Transaction, Txid, Work};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use protocol::Version;
use tokio::sync::watch;

use super::block_file::{BlockFile, Durability};
use super::branch;
use super::coinbase::subsidy;
use super::rules::{self, ChainParams};
use super::tree::{BlockTree, Inserted, OrphanPool, Reorg};
use super::{BlockVerdict, Template, TemplateSource};

/// Version the embedded chain's templates carry (BIP 9 top bits).
const BLOCK_VERSION: u32 = 0x2000_0000;
/// Room left for the coinbase when filling a template from the mempool.
const COINBASE_WEIGHT_RESERVE: u64 = 4_000;
/// Blocks waiting for their parent: at most this many...
const MAX_ORPHANS: usize = 1_000;
/// ...and this many bytes (a handful of full blocks).
const MAX_ORPHAN_BYTES: usize = 16 * 1024 * 1024;
/// Most headers one `getheaders` answer carries (Bitcoin's limit).
pub const MAX_HEADERS: usize = 2_000;

#[derive(Default)]
struct Mempool {
    txs: Vec<Transaction>,
    ids: HashSet<Txid>,
    weight: u64,
}

struct State {
    tree: BlockTree,
    orphans: OrphanPool,
    mempool: Mempool,
    /// Blocks found by this pool's miners (counted as found while on the best chain).
    found_here: HashSet<BlockHash>,
}

/// Why a fed transaction was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MempoolError {
    #[error("transaction does not decode: {0}")]
    Decode(String),
    #[error("coinbase transactions cannot be fed")]
    Coinbase,
    #[error("transaction {0} is already in the mempool")]
    Duplicate(Txid),
    #[error("mempool is full (a block's worth of weight)")]
    Full,
}

/// Why stored blocks could not be resumed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the stored chain starts at genesis {stored}, this network's genesis is {ours}: it is \
         another chain (another --p2p-network or --genesis-bits); move the chain file and the \
         database away, or start with the flags it was made with"
    )]
    OtherChain { stored: BlockHash, ours: BlockHash },
    #[error("cannot write the chain file: {0}")]
    File(#[from] std::io::Error),
}

/// Where a block came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Found by this pool's miners.
    Local,
    /// Sent by a peer.
    Peer,
    /// Sent by a peer, asked for because a header chain with the work to lead goes through it
    /// (see [`super::branch`]).
    Vouched,
}

/// A block a call stored in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub hash: BlockHash,
    pub height: u64,
}

/// What accepting a block did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The verdict on the block given.
    pub verdict: BlockVerdict,
    /// Blocks stored: the one given and any waiting orphans it let in, parents first.
    pub stored: Vec<Stored>,
    /// Changes of the best chain to another branch, in order.
    pub reorgs: Vec<Reorg>,
    /// The block's parent, when it is unknown (the block waits for it).
    pub missing_parent: Option<BlockHash>,
    /// Whether the best tip moved.
    pub tip_changed: bool,
}

impl Outcome {
    fn only(verdict: BlockVerdict) -> Outcome {
        Outcome {
            verdict,
            stored: Vec::new(),
            reorgs: Vec::new(),
            missing_parent: None,
            tip_changed: false,
        }
    }
}

/// Where a stored block stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub height: u64,
    /// On the best chain (else on a side branch: orphaned).
    pub best: bool,
    pub found_here: bool,
}

pub struct EmbeddedChain {
    params: ChainParams,
    genesis: BlockHash,
    state: Mutex<State>,
    tx: watch::Sender<Arc<Template>>,
    file: BlockFile,
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

impl EmbeddedChain {
    /// Whether `headers` (a chain, the first on a block we have) carry the work to lead, so
    /// their blocks are worth fetching; `None` when the first one's parent is unknown. Each
    /// header must carry its proof of work, within the limit, before its work is believed (a
    /// header that only claims a tiny target would otherwise count for any work it names).
    pub fn headers_could_lead(&self, headers: &[Header]) -> Option<Result<bool, &'static str>> {
        let first = headers.first()?;
        if let Err(reason) = self.check_headers_pow(headers) {
            return Some(Err(reason));
        }
        let s = self.state.lock();
        let work = branch::work_through(&s.tree, &first.prev_blockhash, headers)?;
        Some(Ok(branch::could_lead(&s.tree, work, &self.params.branches)))
    }

    /// That each header carries its proof of work, within the network's limit.
    pub fn check_headers_pow(&self, headers: &[Header]) -> Result<(), &'static str> {
        for h in headers {
            let Ok(target) = protocol::CompactTarget::from(h.bits).to_target() else {
                return Err("bad-diffbits (header)");
            };
            if target > self.params.retarget.pow_limit {
                return Err("bad-diffbits (header)");
            }
            if !target.is_met_by(&h.block_hash()) {
                return Err("high-hash (header)");
            }
        }
        Ok(())
    }

    /// Whether the best chain has less work than the network's minimum: the node is still
    /// syncing, and stores a peer's block only when a header chain that reaches the minimum
    /// vouched for it (see [`super::min_work`]).
    pub fn below_min_work(&self) -> bool {
        branch::below_min_work(&self.state.lock().tree, &self.params.branches)
    }

    pub fn min_chain_work(&self) -> Work {
        self.params.branches.min_chain_work
    }

    /// A stored block's height and the work of the chain it ends.
    pub fn position(&self, hash: &BlockHash) -> Option<(u64, Work)> {
        let s = self.state.lock();
        Some((s.tree.height(hash)?, s.tree.chain_work(hash)?))
    }

    /// How deep a peer's branch may leave the best chain.
    pub fn max_fork_depth(&self) -> u64 {
        self.params.branches.max_fork_depth
    }

    pub fn tip(&self) -> (u64, BlockHash) {
        self.state.lock().tree.best()
    }

    pub fn genesis_hash(&self) -> BlockHash {
        self.genesis
    }

    /// Hashes for a `getheaders` that finds our fork point with any peer.
    pub fn locator(&self) -> Vec<BlockHash> {
        self.state.lock().tree.locator()
    }

    /// Whether the block is stored, or waits for its parent.
    pub fn knows(&self, hash: &BlockHash) -> bool {
        let s = self.state.lock();
        s.tree.contains(hash) || s.orphans.contains(hash)
    }

    /// Where a stored block stands.
    pub fn standing(&self, hash: &BlockHash) -> Option<Standing> {
        let s = self.state.lock();
        Some(Standing {
            height: s.tree.height(hash)?,
            best: s.tree.is_on_best_chain(hash),
            found_here: s.found_here.contains(hash),
        })
    }

    /// A stored block, read back from the chain file.
    pub fn block(&self, hash: &BlockHash) -> Option<Block> {
        match self.file.read(hash) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, block = %hash, "cannot read a block back from the chain file");
                None
            }
        }
    }

    /// The best chain's headers after the first `locator` hash on it (the genesis when none
    /// is), up to `stop` or [`MAX_HEADERS`].
    pub fn headers_after(&self, locator: &[BlockHash], stop: BlockHash) -> Vec<Header> {
        let s = self.state.lock();
        let from = locator
            .iter()
            .find(|h| s.tree.is_on_best_chain(h))
            .and_then(|h| s.tree.height(h))
            .unwrap_or(0);
        let mut out = Vec::new();
        let mut height = from + 1;
        while let Some(hash) = s.tree.best_at(height) {
            out.push(*s.tree.header(&hash).expect("in the tree"));
            if hash == stop || out.len() == MAX_HEADERS {
                break;
            }
            height += 1;
        }
        out
    }

    /// Blocks waiting for their parent, and their bytes.
    pub fn orphans(&self) -> (usize, usize) {
        let s = self.state.lock();
        (s.orphans.len(), s.orphans.bytes())
    }

    /// Blocks found by this pool's miners that are on the best chain.
    pub fn blocks_found(&self) -> u64 {
        let s = self.state.lock();
        s.found_here
            .iter()
            .filter(|h| s.tree.is_on_best_chain(h))
            .count() as u64
    }

    fn build_template(params: &ChainParams, state: &mut State) -> Template {
        let (height, tip) = state.tree.best();
        let bits = rules::next_bits(params, &state.tree, tip);
        let min_time = rules::median_time_past_at(&state.tree, tip) + 1;
        let txs = state.mempool.txs.clone();
        let txids = txs.iter().map(Transaction::compute_txid).collect();
        Template {
            height: height + 1,
            prev_hash: tip,
            version: Version(BLOCK_VERSION),
            bits,
            target: bits.to_target().expect("chain bits are valid"),
            min_time,
            cur_time: now_secs().max(min_time),
            coinbase_value: subsidy(height + 1),
            transactions: Arc::new(txs),
            txids: Arc::new(txids),
            witness_commitment: None,
            created: Instant::now(),
        }
    }

    fn publish(&self, state: &mut State) {
        let t = Self::build_template(&self.params, state);
        self.tx.send_replace(Arc::new(t));
    }

    /// Feed a transaction for the next blocks' templates.
    pub fn add_transaction(&self, tx: Transaction) -> Result<Txid, MempoolError> {
        if tx.is_coinbase() {
            return Err(MempoolError::Coinbase);
        }
        let txid = tx.compute_txid();
        let weight = tx.weight().to_wu();
        let mut s = self.state.lock();
        if s.mempool.ids.contains(&txid) {
            return Err(MempoolError::Duplicate(txid));
        }
        if s.mempool.weight + weight > rules::MAX_BLOCK_WEIGHT - COINBASE_WEIGHT_RESERVE {
            return Err(MempoolError::Full);
        }
        s.mempool.ids.insert(txid);
        s.mempool.weight += weight;
        s.mempool.txs.push(tx);
        self.publish(&mut s);
        Ok(txid)
    }

    pub fn mempool_len(&self) -> usize {
        self.state.lock().mempool.txs.len()
    }

    /// Check a block found here and store it (the verdict only; see [`EmbeddedChain::accept`]).
    pub fn validate_and_append(&self, block: &Block) -> BlockVerdict {
        self.accept(block, Origin::Local).verdict
    }

    /// Check a block as a node would and store it: on the best chain (a new tip, perhaps by a
    /// reorganisation) or on a side branch; aside, when its parent is unknown. A stored block
    /// lets in the orphans waiting for it.
    pub fn accept(&self, block: &Block, origin: Origin) -> Outcome {
        let hash = block.block_hash();
        let mut s = self.state.lock();
        if s.tree.contains(&hash) || s.orphans.contains(&hash) {
            return Outcome::only(BlockVerdict::Duplicate);
        }
        if let Err(reason) = rules::check_context_free(&self.params, block) {
            return Outcome::only(BlockVerdict::Rejected(reason.to_owned()));
        }
        let parent = block.header.prev_blockhash;
        if !s.tree.contains(&parent) {
            s.orphans.add(block.clone(), origin == Origin::Vouched);
            let mut out = Outcome::only(BlockVerdict::Unknown(format!(
                "parent {parent} unknown: kept until it arrives"
            )));
            out.missing_parent = Some(parent);
            return out;
        }
        // Work before storage: a peer's branch that cannot lead is never written anywhere.
        if origin != Origin::Local {
            if let Err(refusal) = self.judge(&s, block, origin) {
                return Outcome::only(BlockVerdict::Rejected(refusal.reason().to_owned()));
            }
        }
        if let Err(reason) = rules::check_contextual(&self.params, &s.tree, block, now_secs()) {
            return Outcome::only(BlockVerdict::Rejected(reason.to_owned()));
        }
        let mut out = Outcome::only(BlockVerdict::Accepted);
        let best = self.store(&mut s, block, origin, &mut out);
        if !best {
            out.verdict = BlockVerdict::Orphaned;
        }
        let mut included: HashSet<Txid> =
            block.txdata.iter().map(Transaction::compute_txid).collect();
        // Orphans waiting for this block (and for those) join now.
        let mut parents = vec![hash];
        while let Some(p) = parents.pop() {
            for (child, vouched) in s.orphans.take_children(&p) {
                // A waiting block is judged like any other once its parent is in.
                let origin = if vouched {
                    Origin::Vouched
                } else {
                    Origin::Peer
                };
                if let Err(refusal) = self.judge(&s, &child, origin) {
                    tracing::info!(block = %child.block_hash(), reason = refusal.reason(), "a block that waited for its parent is not stored");
                    continue;
                }
                match rules::check_contextual(&self.params, &s.tree, &child, now_secs()) {
                    Ok(()) => {
                        self.store(&mut s, &child, Origin::Peer, &mut out);
                        included.extend(child.txdata.iter().map(Transaction::compute_txid));
                        parents.push(child.block_hash());
                    }
                    Err(reason) => {
                        tracing::info!(block = %child.block_hash(), reason, "a block that waited for its parent is invalid")
                    }
                }
            }
        }
        if out.tip_changed {
            let pool = std::mem::take(&mut s.mempool);
            for tx in pool.txs {
                let txid = tx.compute_txid();
                if !included.contains(&txid) {
                    s.mempool.ids.insert(txid);
                    s.mempool.weight += tx.weight().to_wu();
                    s.mempool.txs.push(tx);
                }
            }
            self.publish(&mut s);
        }
        out
    }

    /// Whether a peer's block may be stored (see [`branch`]): work, width, room and depth.
    fn judge(&self, s: &State, block: &Block, origin: Origin) -> Result<(), branch::Refusal> {
        let rules = &self.params.branches;
        let side = branch::side_load(&s.tree, rules, |h| self.file.size(h).unwrap_or(0));
        let candidate = branch::Candidate {
            header: &block.header,
            bytes: block.total_size() as u64,
            vouched: origin == Origin::Vouched,
        };
        branch::judge(&s.tree, candidate, rules, side)
    }

    /// Keep a checked block in the file and the tree; whether it is now on the best chain.
    fn store(&self, s: &mut State, block: &Block, origin: Origin, out: &mut Outcome) -> bool {
        let hash = block.block_hash();
        let height = s
            .tree
            .height(&block.header.prev_blockhash)
            .expect("checked")
            + 1;
        let durability = match origin {
            Origin::Local => Durability::Synced,
            Origin::Peer | Origin::Vouched => Durability::Written,
        };
        if let Err(e) = self.file.append(height, block, durability) {
            // The database still gets the block; peers asking for it get `notfound`.
            tracing::error!(error = %e, file = %self.file.path().display(), "cannot keep the block in the chain file");
        }
        if origin == Origin::Local {
            s.found_here.insert(hash);
        }
        out.stored.push(Stored { hash, height });
        match s.tree.insert(block.header) {
            Inserted::Extended { .. } => {
                out.tip_changed = true;
                true
            }
            Inserted::Reorganised(r) => {
                tracing::warn!(
                    fork_height = r.fork_height,
                    depth = r.disconnected.len(),
                    new_tip = %hash,
                    "reorganisation: a heavier branch is now the best chain"
                );
                out.reorgs.push(r);
                out.tip_changed = true;
                true
            }
            _ => false,
        }
    }
}

impl TemplateSource for EmbeddedChain {
    fn templates(&self) -> watch::Receiver<Arc<Template>> {
        self.tx.subscribe()
    }

    fn submit_block(&self, block: Block) -> BoxFuture<'_, BlockVerdict> {
        Box::pin(async move { self.validate_and_append(&block) })
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn confirmations(&self, hash: BlockHash) -> BoxFuture<'_, Result<i64, String>> {
        let depth = match self.standing(&hash) {
            Some(s) if s.best => self.tip().0 as i64 - s.height as i64 + 1,
            _ => -1,
        };
        Box::pin(async move { Ok(depth) })
    }
}

/// Opening: rebuilding the tree from the block file and the database.
#[path = "embedded_open.rs"]
mod open;

#[cfg(test)]
#[path = "embedded_tests.rs"]
mod tests;
