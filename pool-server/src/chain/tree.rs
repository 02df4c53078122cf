//! The block tree: every block header the node has accepted, with its height and the
//! cumulative work of the chain it ends. The best chain is the one with most work (the first
//! seen wins a tie, as in Bitcoin); a block that makes another branch heaviest is a
//! reorganisation, reported with the blocks that leave the best chain and those that join it.
//!
//! The tree judges only shape and work: proof of work, bits, time and contents are checked
//! before a block gets here. Blocks whose parent is unknown wait in the [`OrphanPool`],
//! bounded in count and bytes, while the parent is fetched.

use std::collections::{HashMap, HashSet, VecDeque};

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash, Work};

#[derive(Debug, Clone)]
struct Node {
    header: Header,
    height: u64,
    chain_work: Work,
}

/// A change of the best chain to another branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reorg {
    /// Height of the last block both branches share.
    pub fork_height: u64,
    /// Blocks that left the best chain, the old tip first.
    pub disconnected: Vec<BlockHash>,
    /// Blocks that joined it, from the fork up to the new tip.
    pub connected: Vec<BlockHash>,
}

/// What inserting a header did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Already in the tree: nothing changed (never relay it again).
    Duplicate,
    /// Its parent is not in the tree: keep the block aside and fetch the parent.
    UnknownParent,
    /// Stored on a branch with no more work than the best: the tip is unchanged.
    SideBranch { height: u64 },
    /// The new best tip, extending the old one.
    Extended { height: u64 },
    /// The new best tip, on another branch.
    Reorganised(Reorg),
}

/// Every accepted header, by hash.
#[derive(Debug)]
pub struct BlockTree {
    nodes: HashMap<BlockHash, Node>,
    best: BlockHash,
    /// The best chain by height: `active[h]` is its block at height `h`.
    active: Vec<BlockHash>,
    /// How many children each block with any has.
    children: HashMap<BlockHash, u32>,
    /// The blocks off the best chain (few: each cost work at the network's difficulty).
    side: HashSet<BlockHash>,
}

impl BlockTree {
    /// A tree holding only `genesis` (height 0).
    pub fn new(genesis: Header) -> Self {
        let hash = genesis.block_hash();
        let mut nodes = HashMap::new();
        nodes.insert(
            hash,
            Node {
                header: genesis,
                height: 0,
                chain_work: genesis.work(),
            },
        );
        BlockTree {
            nodes,
            best: hash,
            active: vec![hash],
            children: HashMap::new(),
            side: HashSet::new(),
        }
    }

    /// Where the branch of `hash` leaves the best chain: the height of its last block on it.
    pub fn fork_height(&self, hash: &BlockHash) -> Option<u64> {
        let mut at = *hash;
        while !self.is_on_best_chain(&at) {
            at = self.nodes.get(&at)?.header.prev_blockhash;
        }
        self.height(&at)
    }

    /// Side blocks whose branch leaves the best chain below `height`: no reorganisation
    /// the node allows can reach them.
    pub fn side_forked_below(&self, height: u64) -> Vec<BlockHash> {
        self.side
            .iter()
            .filter(|h| self.fork_height(h).is_some_and(|f| f < height))
            .copied()
            .collect()
    }

    /// Drop side blocks (never the best chain's), with all they lead to.
    pub fn forget_side(&mut self, hashes: &[BlockHash]) {
        for hash in hashes {
            if !self.side.remove(hash) {
                continue;
            }
            if let Some(node) = self.nodes.remove(hash) {
                let parent = node.header.prev_blockhash;
                if let Some(n) = self.children.get_mut(&parent) {
                    *n -= 1;
                    if *n == 0 {
                        self.children.remove(&parent);
                    }
                }
            }
            self.children.remove(hash);
        }
    }

    /// The blocks off the best chain, with their heights.
    pub fn side_blocks(&self) -> impl Iterator<Item = (BlockHash, u64)> + '_ {
        self.side.iter().map(|h| (*h, self.nodes[h].height))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.nodes.contains_key(hash)
    }

    /// The best tip's height and hash.
    pub fn best(&self) -> (u64, BlockHash) {
        (self.nodes[&self.best].height, self.best)
    }

    pub fn height(&self, hash: &BlockHash) -> Option<u64> {
        self.nodes.get(hash).map(|n| n.height)
    }

    pub fn header(&self, hash: &BlockHash) -> Option<&Header> {
        self.nodes.get(hash).map(|n| &n.header)
    }

    /// How many blocks the tree holds on top of `hash`.
    pub fn children(&self, hash: &BlockHash) -> u32 {
        self.children.get(hash).copied().unwrap_or(0)
    }

    pub fn chain_work(&self, hash: &BlockHash) -> Option<Work> {
        self.nodes.get(hash).map(|n| n.chain_work)
    }

    /// The block at `height` on the chain ending at `from`.
    pub fn ancestor(&self, from: BlockHash, height: u64) -> Option<BlockHash> {
        let mut hash = from;
        let mut node = self.nodes.get(&hash)?;
        if height > node.height {
            return None;
        }
        while node.height > height {
            hash = node.header.prev_blockhash;
            node = self.nodes.get(&hash)?;
        }
        Some(hash)
    }

    /// Whether `hash` is on the best chain.
    pub fn is_on_best_chain(&self, hash: &BlockHash) -> bool {
        self.height(hash)
            .and_then(|h| self.best_at(h))
            .is_some_and(|a| a == *hash)
    }

    /// The best chain's block at `height`.
    pub fn best_at(&self, height: u64) -> Option<BlockHash> {
        usize::try_from(height)
            .ok()
            .and_then(|h| self.active.get(h))
            .copied()
    }

    /// Hashes for `getheaders`: the best tip, then back by 1, 2, 4, ... blocks, ending at
    /// the genesis, so a peer finds our fork point in a few dozen hashes at any height.
    pub fn locator(&self) -> Vec<BlockHash> {
        let (mut height, _) = self.best();
        let mut out = Vec::new();
        let mut step = 1;
        loop {
            out.push(self.best_at(height).expect("on the best chain"));
            if height == 0 {
                return out;
            }
            if out.len() >= 10 {
                step *= 2;
            }
            height = height.saturating_sub(step);
        }
    }

    /// Insert a header whose block has been validated.
    pub fn insert(&mut self, header: Header) -> Inserted {
        let hash = header.block_hash();
        if self.nodes.contains_key(&hash) {
            return Inserted::Duplicate;
        }
        let Some(parent) = self.nodes.get(&header.prev_blockhash) else {
            return Inserted::UnknownParent;
        };
        let node = Node {
            header,
            height: parent.height + 1,
            chain_work: parent.chain_work + header.work(),
        };
        let (height, work) = (node.height, node.chain_work);
        self.nodes.insert(hash, node);
        *self.children.entry(header.prev_blockhash).or_default() += 1;
        let old = self.best;
        if work <= self.nodes[&old].chain_work {
            self.side.insert(hash);
            return Inserted::SideBranch { height };
        }
        self.best = hash;
        if header.prev_blockhash == old {
            self.active.push(hash);
            return Inserted::Extended { height };
        }
        let reorg = self.path(old, hash);
        self.side.extend(reorg.disconnected.iter().copied());
        for h in &reorg.connected {
            self.side.remove(h);
        }
        self.active.truncate(reorg.fork_height as usize + 1);
        self.active.extend(reorg.connected.iter().copied());
        Inserted::Reorganised(reorg)
    }

    /// The blocks from `old` back to the fork with `new`, and from the fork up to `new`.
    fn path(&self, old: BlockHash, new: BlockHash) -> Reorg {
        let (mut a, mut b) = (old, new);
        let mut disconnected = Vec::new();
        let mut connected = Vec::new();
        while self.nodes[&a].height > self.nodes[&b].height {
            disconnected.push(a);
            a = self.nodes[&a].header.prev_blockhash;
        }
        while self.nodes[&b].height > self.nodes[&a].height {
            connected.push(b);
            b = self.nodes[&b].header.prev_blockhash;
        }
        while a != b {
            disconnected.push(a);
            connected.push(b);
            a = self.nodes[&a].header.prev_blockhash;
            b = self.nodes[&b].header.prev_blockhash;
        }
        connected.reverse();
        Reorg {
            fork_height: self.nodes[&a].height,
            disconnected,
            connected,
        }
    }
}

/// Blocks whose parent is not known yet, bounded by count and by bytes; the oldest goes
/// first when full, so a peer sending unconnectable blocks cannot grow the node's memory.
#[derive(Debug)]
pub struct OrphanPool {
    /// Each block, its bytes, and whether a header chain with the work vouched for it.
    blocks: HashMap<BlockHash, (Block, usize, bool)>,
    order: VecDeque<BlockHash>,
    bytes: usize,
    max_blocks: usize,
    max_bytes: usize,
}

impl OrphanPool {
    pub fn new(max_blocks: usize, max_bytes: usize) -> Self {
        OrphanPool {
            blocks: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
            max_blocks,
            max_bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.blocks.contains_key(hash)
    }

    /// Bytes held (the blocks' serialized sizes).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keep `block` until its parent arrives (`vouched`: asked for because a header chain
    /// with the work goes through it); false when it is already kept or alone exceeds the
    /// byte bound.
    pub fn add(&mut self, block: Block, vouched: bool) -> bool {
        let hash = block.block_hash();
        let size = block.total_size();
        if self.blocks.contains_key(&hash) || size > self.max_bytes || self.max_blocks == 0 {
            return false;
        }
        while self.blocks.len() >= self.max_blocks || self.bytes + size > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((_, s, _)) = self.blocks.remove(&oldest) {
                self.bytes -= s;
            }
        }
        self.blocks.insert(hash, (block, size, vouched));
        self.order.push_back(hash);
        self.bytes += size;
        true
    }

    /// The kept blocks whose parent is `parent`, removed from the pool, each with whether it
    /// was vouched for.
    pub fn take_children(&mut self, parent: &BlockHash) -> Vec<(Block, bool)> {
        let children: Vec<BlockHash> = self
            .blocks
            .iter()
            .filter(|(_, (b, _, _))| b.header.prev_blockhash == *parent)
            .map(|(h, _)| *h)
            .collect();
        self.order.retain(|h| !children.contains(h));
        children
            .into_iter()
            .filter_map(|h| self.blocks.remove(&h))
            .map(|(b, s, vouched)| {
                self.bytes -= s;
                (b, vouched)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::block::Version;
    use bitcoin::hashes::Hash;
    use bitcoin::{CompactTarget, TxMerkleNode};

    const EASY: u32 = 0x207fffff;
    const HARDER: u32 = 0x1f7fffff;

    fn header(prev: BlockHash, bits: u32, nonce: u32) -> Header {
        Header {
            version: Version::TWO,
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1_767_225_600 + nonce,
            bits: CompactTarget::from_consensus(bits),
            nonce,
        }
    }

    /// `n` blocks on top of `from`, each of `bits`, distinct by `salt`.
    fn branch(
        tree: &mut BlockTree,
        from: BlockHash,
        n: u32,
        bits: u32,
        salt: u32,
    ) -> Vec<BlockHash> {
        let mut prev = from;
        (0..n)
            .map(|i| {
                let h = header(prev, bits, salt * 1000 + i);
                tree.insert(h);
                prev = h.block_hash();
                prev
            })
            .collect()
    }

    #[test]
    fn a_chain_grows_at_its_tip_and_duplicates_or_orphans_change_nothing() {
        let genesis = header(BlockHash::all_zeros(), EASY, 0);
        let mut tree = BlockTree::new(genesis);
        let g = genesis.block_hash();
        let h1 = header(g, EASY, 1);
        assert_eq!(tree.insert(h1), Inserted::Extended { height: 1 });
        assert_eq!(tree.insert(h1), Inserted::Duplicate);
        let stray = header(BlockHash::from_byte_array([7; 32]), EASY, 2);
        assert_eq!(tree.insert(stray), Inserted::UnknownParent);
        assert_eq!(tree.best(), (1, h1.block_hash()));
        assert_eq!(tree.len(), 2);
    }

    #[test]
    fn a_lighter_or_equal_branch_waits_and_a_heavier_one_reorganises() {
        let genesis = header(BlockHash::all_zeros(), EASY, 0);
        let mut tree = BlockTree::new(genesis);
        let g = genesis.block_hash();
        let main = branch(&mut tree, g, 4, EASY, 1);
        // Same work as the best (a tie): the first seen stays best.
        let side = branch(&mut tree, main[0], 3, EASY, 2);
        assert_eq!(tree.best().1, main[3]);
        assert!(!tree.is_on_best_chain(&side[2]));
        assert!(tree.is_on_best_chain(&main[0]));
        let mut off: Vec<BlockHash> = tree.side_blocks().map(|(h, _)| h).collect();
        off.sort();
        let mut want = side.clone();
        want.sort();
        assert_eq!(off, want, "the side set is the branch off the best chain");
        // One more block on the side branch: more work, a reorganisation at height 1.
        let next = header(side[2], EASY, 2999);
        let Inserted::Reorganised(r) = tree.insert(next) else {
            panic!("expected a reorganisation");
        };
        assert_eq!(r.fork_height, 1);
        assert_eq!(r.disconnected, vec![main[3], main[2], main[1]]);
        let mut joined = side.clone();
        joined.push(next.block_hash());
        assert_eq!(r.connected, joined);
        assert_eq!(tree.best(), (5, next.block_hash()));
        assert!(!tree.is_on_best_chain(&main[3]));
        // The height index follows the new branch from the fork up.
        assert_eq!(tree.best_at(1), Some(main[0]));
        assert_eq!(tree.best_at(2), Some(side[0]));
        assert_eq!(tree.best_at(5), Some(next.block_hash()));
        assert_eq!(tree.best_at(6), None);
        // The side set follows: the old branch is off the best chain now.
        let mut off: Vec<BlockHash> = tree.side_blocks().map(|(h, _)| h).collect();
        off.sort();
        let mut want = vec![main[1], main[2], main[3]];
        want.sort();
        assert_eq!(off, want);
    }

    #[test]
    fn work_not_length_decides_the_best_chain() {
        let genesis = header(BlockHash::all_zeros(), EASY, 0);
        let mut tree = BlockTree::new(genesis);
        let g = genesis.block_hash();
        let long = branch(&mut tree, g, 10, EASY, 1);
        assert_eq!(tree.best().1, long[9]);
        // Two blocks at 256x the difficulty outweigh ten easy ones.
        let heavy = branch(&mut tree, g, 2, HARDER, 2);
        assert_eq!(tree.best(), (2, heavy[1]));
        assert!(tree.chain_work(&heavy[1]).unwrap() > tree.chain_work(&long[9]).unwrap());
    }

    #[test]
    fn the_locator_walks_back_exponentially_to_the_genesis() {
        let genesis = header(BlockHash::all_zeros(), EASY, 0);
        let mut tree = BlockTree::new(genesis);
        let chain = branch(&mut tree, genesis.block_hash(), 1000, EASY, 1);
        let loc = tree.locator();
        assert_eq!(loc[0], chain[999]);
        assert_eq!(*loc.last().unwrap(), genesis.block_hash());
        let heights: Vec<u64> = loc.iter().map(|h| tree.height(h).unwrap()).collect();
        assert_eq!(
            &heights[..11],
            &[1000, 999, 998, 997, 996, 995, 994, 993, 992, 991, 989]
        );
        assert!(loc.len() < 30, "{} hashes", loc.len());
        assert_eq!(tree.ancestor(chain[999], 500), Some(chain[499]));
        assert_eq!(tree.ancestor(chain[10], 500), None);
    }

    fn block(prev: BlockHash, nonce: u32, padding: usize) -> Block {
        let tx = bitcoin::Transaction {
            version: bitcoin::transaction::Version::ONE,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: vec![],
            output: vec![bitcoin::TxOut {
                value: bitcoin::Amount::ZERO,
                script_pubkey: bitcoin::ScriptBuf::from_bytes(vec![0x6a; padding]),
            }],
        };
        Block {
            header: header(prev, EASY, nonce),
            txdata: vec![tx],
        }
    }

    #[test]
    fn orphans_are_bounded_in_count_and_bytes_and_leave_with_their_parent() {
        let parent = BlockHash::from_byte_array([1; 32]);
        let mut pool = OrphanPool::new(3, 10_000);
        for n in 0..5 {
            assert!(pool.add(block(parent, n, 10), false));
        }
        assert_eq!(pool.len(), 3, "the oldest went first");
        assert!(!pool.add(block(parent, 4, 10), false), "already kept");
        assert!(
            !pool.add(block(parent, 9, 20_000), false),
            "larger than the whole pool"
        );
        pool.add(block(BlockHash::from_byte_array([2; 32]), 7, 4_000), true);
        pool.add(block(BlockHash::from_byte_array([2; 32]), 8, 4_000), false);
        assert!(pool.bytes() <= 10_000, "{} bytes", pool.bytes());
        let kids = pool.take_children(&BlockHash::from_byte_array([2; 32]));
        assert_eq!(kids.len(), 2);
        assert!(kids
            .iter()
            .all(|(b, _)| b.header.prev_blockhash == BlockHash::from_byte_array([2; 32])));
        assert_eq!(
            kids.iter().filter(|(_, vouched)| *vouched).count(),
            1,
            "each keeps whether it was vouched for"
        );
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.take_children(&parent).len(), 1);
        assert!(pool.is_empty());
        assert_eq!(pool.bytes(), 0, "every byte accounted for");
    }
}
