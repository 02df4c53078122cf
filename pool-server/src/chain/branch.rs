//! Which branches the node stores: work before storage.
//!
//! Why: a block whose parent is known and which passes the rules is cheap to make on a branch
//! nobody will ever follow (a fork far back in time, at the genesis difficulty), and every
//! stored block is kept on disk and in the database for good. So, as Bitcoin Core does, a
//! peer's block is stored only when its branch could become the best chain:
//!
//! - **Work**: the branch's work with the block is at least the best chain's minus
//!   [`BranchRules::margin_blocks`] blocks at the tip's difficulty (a block that lost a race by
//!   a block or two is still kept, so a near tie resolves the way the network does), unless
//!   the block was asked for because a header chain with that much work leads through it
//!   (headers first: their proof of work is checked before any body is fetched).
//! - **Width**: at most [`BranchRules::max_siblings`] blocks on one parent, so even blocks
//!   with the work (near ties) take a bounded count and bytes per height.
//! - **Depth**: a branch that leaves the best chain more than [`BranchRules::max_fork_depth`]
//!   blocks below the tip (the rewards' maturity depth by default) is refused whatever its
//!   work, so a block whose credits matured is never reorganised away silently.
//!
//! Pure: the tree in, a verdict out; `embedded.rs` applies it.

use bitcoin::block::Header;
use bitcoin::Work;

use super::tree::BlockTree;

/// Blocks of the tip's work a side branch may trail the best chain by and still be stored.
pub const DEFAULT_MARGIN_BLOCKS: u32 = 6;
/// Blocks one parent may have (a race of four pools at one height is already rare).
pub const DEFAULT_MAX_SIBLINGS: u32 = 4;

/// The node's policy for branches (not consensus: nodes may differ without splitting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchRules {
    pub margin_blocks: u32,
    pub max_fork_depth: u64,
    pub max_siblings: u32,
}

impl Default for BranchRules {
    fn default() -> Self {
        BranchRules {
            margin_blocks: DEFAULT_MARGIN_BLOCKS,
            max_fork_depth: 100,
            max_siblings: DEFAULT_MAX_SIBLINGS,
        }
    }
}

/// Why a block is not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Its branch has too little work to become the best chain.
    #[error("low-work-branch")]
    LowWork,
    /// Its parent has as many children as a block may.
    #[error("crowded-height")]
    Crowded,
    /// Its branch leaves the best chain too far below the tip.
    #[error("fork-too-deep")]
    TooDeep {
        /// The height it left the best chain at, or the lowest height looked at.
        fork_height: u64,
    },
}

impl Refusal {
    /// The reason a verdict carries (Bitcoin Core's style of short names).
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::LowWork => "low-work-branch",
            Refusal::Crowded => "crowded-height",
            Refusal::TooDeep { .. } => "fork-too-deep",
        }
    }
}

/// Whether the block with `header`, whose parent is in `tree`, may be stored. `vouched`: it
/// was asked for because a header chain with enough work leads through it.
pub fn judge(
    tree: &BlockTree,
    header: &Header,
    rules: &BranchRules,
    vouched: bool,
) -> Result<(), Refusal> {
    let parent = header.prev_blockhash;
    if tree.children(&parent) >= rules.max_siblings {
        return Err(Refusal::Crowded);
    }
    let (best_height, best) = tree.best();
    if parent == best {
        return Ok(());
    }
    // Where the branch leaves the best chain; never walk below the deepest fork allowed.
    let lowest = best_height.saturating_sub(rules.max_fork_depth);
    let mut at = parent;
    loop {
        if tree.is_on_best_chain(&at) {
            break;
        }
        let Some(h) = tree.height(&at) else {
            return Err(Refusal::TooDeep { fork_height: 0 });
        };
        if h <= lowest {
            return Err(Refusal::TooDeep { fork_height: h });
        }
        at = tree.header(&at).expect("in the tree").prev_blockhash;
    }
    let fork_height = tree.height(&at).expect("on the best chain");
    if fork_height < lowest {
        return Err(Refusal::TooDeep { fork_height });
    }
    if vouched {
        return Ok(());
    }
    let branch = tree.chain_work(&parent).expect("in the tree") + header.work();
    if !could_lead(tree, branch, rules) {
        return Err(Refusal::LowWork);
    }
    Ok(())
}

/// The work of a branch of `headers` on top of `parent` (which must be in `tree`), to judge
/// a header chain before fetching its bodies; `None` when `parent` is unknown.
pub fn work_through(
    tree: &BlockTree,
    parent: &bitcoin::BlockHash,
    headers: &[Header],
) -> Option<Work> {
    let start = tree.chain_work(parent)?;
    Some(headers.iter().fold(start, |w, h| w + h.work()))
}

/// Whether a branch ending with `work` could become the best chain (within the margin).
pub fn could_lead(tree: &BlockTree, work: Work, rules: &BranchRules) -> bool {
    let (_, best) = tree.best();
    let best_work = tree.chain_work(&best).expect("the tip");
    let tip_work = tree.header(&best).expect("the tip").work();
    let mut reach = work;
    for _ in 0..rules.margin_blocks {
        reach = reach + tip_work;
    }
    reach >= best_work
}

#[cfg(test)]
mod tests {
    use bitcoin::block::Version;
    use bitcoin::hashes::Hash;
    use bitcoin::{BlockHash, CompactTarget, TxMerkleNode};

    use super::*;

    fn header(prev: BlockHash, nonce: u32) -> Header {
        Header {
            version: Version::ONE,
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time: 1_767_225_600,
            bits: CompactTarget::from_consensus(0x207fffff),
            nonce,
        }
    }

    /// A best chain of `n` blocks on a genesis; the tree and its hashes by height.
    fn chain(n: u32) -> (BlockTree, Vec<BlockHash>) {
        let genesis = header(BlockHash::all_zeros(), 0);
        let mut tree = BlockTree::new(genesis);
        let mut hashes = vec![genesis.block_hash()];
        for i in 1..=n {
            let h = header(*hashes.last().unwrap(), i);
            tree.insert(h);
            hashes.push(h.block_hash());
        }
        (tree, hashes)
    }

    /// A side branch of `n` blocks from `from`, stored; its tip.
    fn side(tree: &mut BlockTree, from: BlockHash, n: u32) -> BlockHash {
        let mut at = from;
        for i in 0..n {
            let h = header(at, 1_000_000 + i);
            tree.insert(h);
            at = h.block_hash();
        }
        at
    }

    const RULES: BranchRules = BranchRules {
        margin_blocks: 6,
        max_fork_depth: 100,
        max_siblings: 4,
    };

    #[test]
    fn a_parent_takes_a_bounded_number_of_children() {
        let (mut tree, hashes) = chain(20);
        // The tip's parent has one child (the tip); three more siblings fit, a fifth not.
        for nonce in 0..3 {
            assert_eq!(
                judge(&tree, &header(hashes[19], 70 + nonce), &RULES, false),
                Ok(())
            );
            tree.insert(header(hashes[19], 70 + nonce));
        }
        assert_eq!(tree.children(&hashes[19]), 4);
        assert_eq!(
            judge(&tree, &header(hashes[19], 99), &RULES, true),
            Err(Refusal::Crowded)
        );
    }

    #[test]
    fn the_tip_and_near_ties_are_kept_a_fork_far_behind_is_not() {
        let (tree, hashes) = chain(20);
        // Extending the tip, and a sibling of it: kept.
        assert_eq!(judge(&tree, &header(hashes[20], 7), &RULES, false), Ok(()));
        assert_eq!(judge(&tree, &header(hashes[19], 7), &RULES, false), Ok(()));
        // A branch that trails the tip by six blocks with this one: within the margin;
        // by seven: refused.
        assert_eq!(judge(&tree, &header(hashes[13], 7), &RULES, false), Ok(()));
        assert_eq!(
            judge(&tree, &header(hashes[12], 7), &RULES, false),
            Err(Refusal::LowWork)
        );
        // A fork at the genesis, as a peer that would fill the disk sends it.
        assert_eq!(
            judge(&tree, &header(hashes[0], 7), &RULES, false),
            Err(Refusal::LowWork)
        );
        // Unless a header chain with the work leads through it.
        assert_eq!(judge(&tree, &header(hashes[0], 7), &RULES, true), Ok(()));
    }

    #[test]
    fn a_branch_grows_while_it_keeps_up_and_a_deep_fork_is_refused_whatever_its_work() {
        let (mut tree, hashes) = chain(200);
        // A branch from 3 below the tip grows block by block: each stays within the margin.
        let tip = side(&mut tree, hashes[197], 3);
        assert_eq!(judge(&tree, &header(tip, 7), &RULES, false), Ok(()));
        // A branch from 150 blocks down, vouched by its headers: refused (past maturity).
        let deep = side(&mut tree, hashes[50], 140);
        assert!(matches!(
            judge(&tree, &header(deep, 7), &RULES, true),
            Err(Refusal::TooDeep { .. })
        ));
        assert!(matches!(
            judge(&tree, &header(hashes[50], 7), &RULES, true),
            Err(Refusal::TooDeep { fork_height: 50 })
        ));
        // At the depth allowed, exactly: kept.
        assert_eq!(judge(&tree, &header(hashes[100], 7), &RULES, true), Ok(()));
    }

    #[test]
    fn a_header_chain_is_judged_by_where_it_ends() {
        let (tree, hashes) = chain(20);
        let mut headers = Vec::new();
        let mut at = hashes[0];
        for i in 0..10 {
            let h = header(at, 500 + i);
            at = h.block_hash();
            headers.push(h);
        }
        let work = work_through(&tree, &hashes[0], &headers).unwrap();
        assert!(!could_lead(&tree, work, &RULES));
        let long: Vec<Header> = (0..25)
            .scan(hashes[0], |at, i| {
                let h = header(*at, 900 + i);
                *at = h.block_hash();
                Some(h)
            })
            .collect();
        let work = work_through(&tree, &hashes[0], &long).unwrap();
        assert!(could_lead(&tree, work, &RULES));
    }
}
