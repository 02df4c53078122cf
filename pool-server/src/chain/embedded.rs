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
use bitcoin::hashes::Hash;
use bitcoin::{Amount, Block, BlockHash, Transaction, Txid};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use protocol::{CompactTarget, Version};
use tokio::sync::watch;

use super::block_file::{BlockFile, Durability};
use super::coinbase::subsidy;
use super::genesis::genesis_block;
use super::retarget::{median_time_past, RetargetParams};
use super::tree::{BlockTree, Inserted, OrphanPool, Reorg};
use super::{BlockVerdict, Template, TemplateSource};

/// Version the embedded chain's templates carry (BIP 9 top bits).
const BLOCK_VERSION: u32 = 0x2000_0000;
/// Consensus maximum block weight.
const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// Room left for the coinbase when filling a template from the mempool.
const COINBASE_WEIGHT_RESERVE: u64 = 4_000;
/// Blocks may be at most this far ahead of our clock.
const MAX_FUTURE_SECS: u32 = 2 * 60 * 60;

#[derive(Debug, Clone)]
pub struct ChainParams {
    /// The network's name: with the genesis bits, it makes the genesis ([`genesis_block`]).
    pub network: String,
    pub genesis_bits: CompactTarget,
    pub retarget: RetargetParams,
}

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

/// Checks that need no other block: proof of work against the block's own bits (within the
/// limit), the coinbase, the merkle root, duplicate transactions, weight. Cheap, and done
/// before a block with an unknown parent is kept, so junk never waits in the orphan pool.
fn check_context_free(params: &ChainParams, block: &Block) -> Result<(), &'static str> {
    let bits = CompactTarget::from(block.header.bits);
    let Ok(target) = bits.to_target() else {
        return Err("bad-diffbits");
    };
    if target > params.retarget.pow_limit {
        return Err("bad-diffbits");
    }
    if !target.is_met_by(&block.block_hash()) {
        return Err("high-hash");
    }
    let Some(coinbase) = block.txdata.first() else {
        return Err("bad-blk-length");
    };
    if !coinbase.is_coinbase() {
        return Err("bad-cb-missing");
    }
    if block.txdata[1..].iter().any(Transaction::is_coinbase) {
        return Err("bad-cb-multiple");
    }
    if !block.check_merkle_root() {
        return Err("bad-txnmrklroot");
    }
    let mut seen = HashSet::new();
    if !block.txdata.iter().all(|t| seen.insert(t.compute_txid())) {
        return Err("bad-txns-duplicate");
    }
    if block.weight().to_wu() > MAX_BLOCK_WEIGHT {
        return Err("bad-blk-weight");
    }
    Ok(())
}

/// The bits the block after `parent` must carry, by the retarget rule on `parent`'s branch.
fn next_bits(params: &ChainParams, tree: &BlockTree, parent: BlockHash) -> CompactTarget {
    let header = tree.header(&parent).expect("parent is in the tree");
    let height = tree.height(&parent).expect("parent is in the tree") + 1;
    let bits = CompactTarget::from(header.bits);
    if !params.retarget.is_retarget_height(height) {
        return bits;
    }
    let mut first_height = height - params.retarget.interval as u64;
    let mut retarget = params.retarget;
    if first_height == 0 {
        // The genesis time is fixed, not mined: the first period is timed from block 1,
        // against one block interval fewer.
        if retarget.interval < 2 {
            return bits;
        }
        first_height = 1;
        retarget.interval -= 1;
    }
    let first = tree
        .ancestor(parent, first_height)
        .and_then(|h| tree.header(&h))
        .expect("the branch reaches back to the genesis");
    retarget.next_bits(bits, first.time, header.time)
}

/// Median time of the 11 blocks ending at `tip`.
fn median_time_past_at(tree: &BlockTree, tip: BlockHash) -> u32 {
    let mut times = Vec::with_capacity(11);
    let mut hash = tip;
    while let Some(h) = tree.header(&hash) {
        times.push(h.time);
        if times.len() == 11 || tree.height(&hash) == Some(0) {
            break;
        }
        hash = h.prev_blockhash;
    }
    median_time_past(&times)
}

impl EmbeddedChain {
    /// Rebuild the chain from the blocks of its `file` (in file order) and any more the
    /// database holds (`from_db`, accepted blocks ascending), or start it at the genesis.
    /// Returns the chain and whether it is new (nothing was stored: record the genesis).
    pub fn open(
        params: ChainParams,
        file: BlockFile,
        from_file: Vec<(u64, Block)>,
        from_db: Vec<Block>,
    ) -> Result<(Arc<EmbeddedChain>, Option<Block>), OpenError> {
        // Height 0: the network's genesis, a pure function of its parameters, taken on trust
        // (no proof of work), as in Bitcoin.
        let genesis = genesis_block(&params.network, params.genesis_bits);
        let genesis_hash = genesis.block_hash();
        let stored_genesis = from_file
            .iter()
            .find(|(h, _)| *h == 0)
            .map(|(_, b)| b)
            .or(from_db
                .first()
                .filter(|b| b.header.prev_blockhash == BlockHash::all_zeros()))
            .map(Block::block_hash);
        if let Some(stored) = stored_genesis.filter(|g| *g != genesis_hash) {
            return Err(OpenError::OtherChain {
                stored,
                ours: genesis_hash,
            });
        }
        let is_new = from_file.is_empty() && from_db.is_empty();
        let file_starts_at_genesis = from_file
            .first()
            .is_some_and(|(_, b)| b.block_hash() == genesis_hash);
        let in_file = from_file.len();
        let mut tree = BlockTree::new(genesis.header);
        // (height, block, whether the file has it)
        let mut kept: Vec<(u64, Block, bool)> = vec![(0, genesis.clone(), file_starts_at_genesis)];
        let mut pending: Vec<(Block, bool)> = from_file
            .into_iter()
            .map(|(_, b)| (b, true))
            .chain(from_db.into_iter().map(|b| (b, false)))
            .filter(|(b, _)| b.block_hash() != genesis_hash)
            .collect();
        // Parents come first in both sources, so one pass takes nearly everything; blocks the
        // database had before the file's last ones take another.
        loop {
            let before = pending.len();
            let mut rest = Vec::new();
            for (b, in_file) in pending {
                if tree.contains(&b.block_hash()) {
                    continue;
                }
                if tree.contains(&b.header.prev_blockhash) {
                    tree.insert(b.header);
                    let h = tree.height(&b.block_hash()).expect("inserted");
                    kept.push((h, b, in_file));
                } else {
                    rest.push((b, in_file));
                }
            }
            pending = rest;
            if pending.is_empty() || pending.len() == before {
                break;
            }
        }
        if !pending.is_empty() {
            tracing::warn!(
                blocks = pending.len(),
                "stored blocks that link to no known block were left out of the chain"
            );
        }
        // The file keeps exactly the tree's blocks: append what only the database had, or
        // write it anew when it held anything else (a file of another layout, dropped lines).
        let from_file_kept = kept.iter().filter(|k| k.2).count();
        if file_starts_at_genesis && from_file_kept == in_file {
            for (h, b, _) in kept.iter().filter(|k| !k.2) {
                file.append(*h, b, Durability::Written)?;
            }
        } else {
            let blocks: Vec<(u64, Block)> = kept.into_iter().map(|(h, b, _)| (h, b)).collect();
            file.reset(&blocks)?;
        }
        let mut state = State {
            tree,
            orphans: OrphanPool::new(MAX_ORPHANS, MAX_ORPHAN_BYTES),
            mempool: Mempool::default(),
            found_here: HashSet::new(),
        };
        let template = Arc::new(Self::build_template(&params, &mut state));
        let (tx, _) = watch::channel(template);
        Ok((
            Arc::new(EmbeddedChain {
                params,
                genesis: genesis_hash,
                state: Mutex::new(state),
                tx,
                file,
            }),
            is_new.then_some(genesis),
        ))
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
        let bits = next_bits(params, &state.tree, tip);
        let min_time = median_time_past_at(&state.tree, tip) + 1;
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
        if s.mempool.weight + weight > MAX_BLOCK_WEIGHT - COINBASE_WEIGHT_RESERVE {
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
        if let Err(reason) = check_context_free(&self.params, block) {
            return Outcome::only(BlockVerdict::Rejected(reason.to_owned()));
        }
        let parent = block.header.prev_blockhash;
        if !s.tree.contains(&parent) {
            s.orphans.add(block.clone());
            let mut out = Outcome::only(BlockVerdict::Unknown(format!(
                "parent {parent} unknown: kept until it arrives"
            )));
            out.missing_parent = Some(parent);
            return out;
        }
        if let Err(reason) = self.check_contextual(&s, block) {
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
            for child in s.orphans.take_children(&p) {
                match self.check_contextual(&s, &child) {
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
            Origin::Peer => Durability::Written,
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

    /// Checks against the block's parent (which is stored): bits by the retarget rule on that
    /// branch, time rules, BIP 34 height, coinbase amount.
    fn check_contextual(&self, s: &State, block: &Block) -> Result<(), &'static str> {
        let parent = block.header.prev_blockhash;
        let height = s.tree.height(&parent).expect("parent is stored") + 1;
        if CompactTarget::from(block.header.bits) != next_bits(&self.params, &s.tree, parent) {
            return Err("bad-diffbits");
        }
        if block.header.time <= median_time_past_at(&s.tree, parent) {
            return Err("time-too-old");
        }
        if block.header.time > now_secs() + MAX_FUTURE_SECS {
            return Err("time-too-new");
        }
        if height > 16 && block.bip34_block_height().ok() != Some(height) {
            return Err("bad-cb-height");
        }
        let paid: Amount = block.txdata[0].output.iter().map(|o| o.value).sum();
        if paid > subsidy(height) {
            return Err("bad-cb-amount");
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::coinbase::CoinbaseBuilder;
    use bitcoin::block::Version as BlockVersion;
    use bitcoin::hashes::Hash;
    use bitcoin::{ScriptBuf, TxMerkleNode};

    /// A new chain whose blocks are kept in a file under `dir`.
    fn open(dir: &tempfile::TempDir, params: ChainParams) -> (Arc<EmbeddedChain>, Option<Block>) {
        let (file, stored) = BlockFile::open(&dir.path().join("chain.blocks")).unwrap();
        EmbeddedChain::open(params, file, stored, vec![]).unwrap()
    }

    fn params(interval: u32) -> ChainParams {
        ChainParams {
            network: "test".into(),
            genesis_bits: CompactTarget::from_consensus(0x207fffff),
            retarget: RetargetParams {
                interval,
                block_time_secs: 30,
                pow_limit: CompactTarget::from_consensus(0x207fffff)
                    .to_target()
                    .unwrap(),
            },
        }
    }

    /// Mine the current template with a plain loop (the target is trivial).
    fn mine(chain: &EmbeddedChain, time: u32) -> Block {
        let t = chain.templates().borrow().clone();
        let parts = CoinbaseBuilder::new(ScriptBuf::from_bytes(vec![0x51]), "/t/", 8).build(
            t.height,
            t.coinbase_value,
            None,
            1,
        );
        let mut raw = parts.coinb1;
        raw.extend([0u8; 8]);
        raw.extend(parts.coinb2);
        let coinbase: Transaction = bitcoin::consensus::deserialize(&raw).unwrap();
        let mut txdata = vec![coinbase];
        txdata.extend(t.transactions.iter().cloned());
        let mut block = Block {
            header: Header {
                version: BlockVersion::from_consensus(t.version.0 as i32),
                prev_blockhash: t.prev_hash,
                merkle_root: TxMerkleNode::all_zeros(),
                time: time.max(t.min_time),
                bits: t.bits.into(),
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().unwrap();
        while !t.target.is_met_by(&block.block_hash()) {
            block.header.nonce += 1;
        }
        block
    }

    #[test]
    fn found_blocks_extend_the_chain_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, genesis) = open(&dir, params(1000));
        assert!(genesis.is_some());
        let b1 = mine(&chain, now_secs());
        let mut bad = b1.clone();
        bad.header.merkle_root = TxMerkleNode::all_zeros();
        let target = chain.templates().borrow().target;
        while !target.is_met_by(&bad.block_hash()) {
            bad.header.nonce += 1;
        }
        assert_eq!(
            chain.validate_and_append(&bad),
            BlockVerdict::Rejected("bad-txnmrklroot".into())
        );
        assert_eq!(chain.validate_and_append(&b1), BlockVerdict::Accepted);
        assert_eq!(chain.tip(), (1, b1.block_hash()));
        assert_eq!(chain.validate_and_append(&b1), BlockVerdict::Duplicate);
    }

    #[test]
    fn fast_blocks_raise_difficulty_at_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, _) = open(&dir, params(3));
        let start = chain.templates().borrow().bits;
        let t0 = now_secs();
        for i in 1..=3 {
            let b = mine(&chain, t0 + i);
            assert_eq!(chain.validate_and_append(&b), BlockVerdict::Accepted);
        }
        // 3 blocks in ~3 s against 90 s expected: clamped to 4x harder.
        let after = chain.templates().borrow().bits;
        let ratio = start.to_target().unwrap().difficulty().as_f64();
        let ratio = after.to_target().unwrap().difficulty().as_f64() / ratio;
        assert!((ratio - 4.0).abs() < 0.01, "{ratio}");
    }

    #[test]
    fn mempool_transactions_go_into_templates_and_leave_with_the_block() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, _) = open(&dir, params(1000));
        let tx: Transaction = bitcoin::consensus::deserialize(&hex::decode(
            "0100000001c997a5e56e104102fa209c6a852dd90660a20b2d9c352423edce25857fcd3704000000004847304402204e45e16932b8af514961a1d3a1a25fdf3f4f7732e9d624c6c61548ab5fb8cd410220181522ec8eca07de4860a4acdd12909d831cc56cbbac4622082221a8768d1d0901ffffffff0200ca9a3b00000000434104ae1a62fe09c5f51b13905f07f06b99a2f7159b2225f374cd378d71302fa28414e7aab37397f554a7df5f142c21c1b7303b8a0626f1baded5c72a704f7e6cd84cac00286bee0000000043410411db93e1dcdb8a016b49840f8c53bc1eb68a382e97b1482ecad7b148a6909a5cb2e0eaddfb84ccf9744464f82e160bfa9b8b64f9d4c03f999b8643f656b412a3ac00000000",
        ).unwrap()).unwrap();
        let txid = chain.add_transaction(tx.clone()).unwrap();
        assert_eq!(
            txid.to_string(),
            "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
        );
        assert_eq!(
            chain.add_transaction(tx),
            Err(MempoolError::Duplicate(txid))
        );
        assert_eq!(chain.templates().borrow().txids.as_slice(), &[txid]);
        let b = mine(&chain, now_secs());
        assert_eq!(b.txdata.len(), 2);
        assert_eq!(chain.validate_and_append(&b), BlockVerdict::Accepted);
        assert_eq!(chain.mempool_len(), 0);
    }

    #[test]
    fn reopening_resumes_at_the_stored_tip() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, genesis) = open(&dir, params(1000));
        assert!(genesis.is_some());
        let b1 = mine(&chain, now_secs());
        chain.validate_and_append(&b1);
        drop(chain);
        let (again, none) = open(&dir, params(1000));
        assert!(none.is_none());
        assert_eq!(again.tip(), (1, b1.block_hash()));
        assert_eq!(again.templates().borrow().height, 2);
        assert_eq!(again.block(&b1.block_hash()), Some(b1));
    }

    #[test]
    fn a_heavier_branch_reorganises_and_orphans_wait_for_their_parent() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, _) = open(&dir, params(1000));
        let (other, _) = open(&tempfile::tempdir().unwrap(), params(1000));
        let t0 = now_secs();
        let ours = mine(&chain, t0);
        assert_eq!(chain.validate_and_append(&ours), BlockVerdict::Accepted);
        // Another node mines two blocks on the same genesis.
        let theirs1 = mine(&other, t0 + 1);
        other.validate_and_append(&theirs1);
        let theirs2 = mine(&other, t0 + 2);
        other.validate_and_append(&theirs2);
        // Its second block arrives first: kept aside, its parent asked for.
        let out = chain.accept(&theirs2, Origin::Peer);
        assert_eq!(out.missing_parent, Some(theirs1.block_hash()));
        assert_eq!(chain.orphans().0, 1);
        assert!(chain.knows(&theirs2.block_hash()));
        // The parent lets it in: that branch has more work, so the best chain moves.
        let out = chain.accept(&theirs1, Origin::Peer);
        assert_eq!(out.verdict, BlockVerdict::Orphaned, "alone it only ties");
        assert_eq!(out.stored.len(), 2);
        assert_eq!(out.reorgs.len(), 1);
        assert_eq!(out.reorgs[0].disconnected, vec![ours.block_hash()]);
        assert!(out.tip_changed);
        assert_eq!(chain.tip(), (2, theirs2.block_hash()));
        assert_eq!(chain.orphans(), (0, 0));
        let standing = chain.standing(&ours.block_hash()).unwrap();
        assert!(!standing.best && standing.found_here);
        assert_eq!(chain.blocks_found(), 0);
        assert_eq!(chain.templates().borrow().prev_hash, theirs2.block_hash());
        // The tree comes back from the file, side branch and all.
        drop(chain);
        let (again, _) = open(&dir, params(1000));
        assert_eq!(again.tip(), (2, theirs2.block_hash()));
        assert_eq!(
            again.standing(&ours.block_hash()).map(|s| s.best),
            Some(false)
        );
        assert_eq!(
            again.headers_after(&[BlockHash::all_zeros()], BlockHash::all_zeros()),
            vec![theirs1.header, theirs2.header]
        );
    }

    #[test]
    fn a_chain_file_of_another_network_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(&dir, params(1000)));
        let mut other = params(1000);
        other.network = "another".into();
        let (file, stored) = BlockFile::open(&dir.path().join("chain.blocks")).unwrap();
        let err = EmbeddedChain::open(other, file, stored, vec![])
            .err()
            .unwrap();
        assert!(matches!(err, OpenError::OtherChain { .. }), "{err}");
    }
}
