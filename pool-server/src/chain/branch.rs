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
//! - **Room**: side-branch blocks within the fork depth (those a reorganisation could still
//!   reach) are at most [`BranchRules::max_side_blocks`] and [`BranchRules::max_side_bytes`];
//!   a block that would go past either is not stored unless it makes its branch the best.
//!   Deeper side blocks are of no use and are dropped from the block file at the next start.
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
/// Bytes of side-branch blocks within the fork depth (a catch-up of a hundred 1 MB blocks fits).
pub const DEFAULT_MAX_SIDE_BYTES: u64 = 128 * 1024 * 1024;

/// Side-branch blocks within the fork depth a node may hold: two for every height it could
/// still reorganise (a race at every height, and a deep branch catching up, both fit).
pub fn default_max_side_blocks(max_fork_depth: u64) -> u64 {
    (2 * max_fork_depth).max(32)
}

/// The node's policy for branches (not consensus: nodes may differ without splitting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchRules {
    pub margin_blocks: u32,
    pub max_fork_depth: u64,
    pub max_siblings: u32,
    pub max_side_blocks: u64,
    pub max_side_bytes: u64,
    /// Until the best chain has this much work, no peer's block is stored unless a header
    /// chain that reaches it vouched for it (see [`super::min_work`]).
    pub min_chain_work: Work,
}

impl Default for BranchRules {
    fn default() -> Self {
        BranchRules {
            margin_blocks: DEFAULT_MARGIN_BLOCKS,
            max_fork_depth: 100,
            max_siblings: DEFAULT_MAX_SIBLINGS,
            max_side_blocks: default_max_side_blocks(100),
            max_side_bytes: DEFAULT_MAX_SIDE_BYTES,
            min_chain_work: super::min_work::none(),
        }
    }
}

/// What the side branches within the fork depth hold now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideLoad {
    pub blocks: u64,
    pub bytes: u64,
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
    /// The best chain has less work than the network's minimum, and no header chain that
    /// reaches it vouched for the block.
    #[error("below-min-chain-work")]
    BelowMinWork,
    /// The side branches hold as many blocks or bytes as they may.
    #[error("side-branches-full")]
    SideFull,
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
            Refusal::SideFull => "side-branches-full",
            Refusal::BelowMinWork => "below-min-chain-work",
            Refusal::TooDeep { .. } => "fork-too-deep",
        }
    }
}

/// A block to judge: its header, its size, and whether it was asked for because a header
/// chain with enough work leads through it.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub header: &'a Header,
    pub bytes: u64,
    pub vouched: bool,
}

/// Whether `block`, whose parent is in `tree`, may be stored while the side branches hold
/// `side` (see [`side_window`]).
pub fn judge(
    tree: &BlockTree,
    block: Candidate<'_>,
    rules: &BranchRules,
    side: SideLoad,
) -> Result<(), Refusal> {
    let header = block.header;
    let parent = header.prev_blockhash;
    if tree.children(&parent) >= rules.max_siblings {
        return Err(Refusal::Crowded);
    }
    let (best_height, best) = tree.best();
    if !block.vouched && below_min_work(tree, rules) {
        return Err(Refusal::BelowMinWork);
    }
    if parent == best {
        return Ok(());
    }
    // Work first: a branch that cannot lead is refused as such, however deep it forks (the
    // cheapest thing a peer can send, and what it is scored for).
    let branch = tree.chain_work(&parent).expect("in the tree") + header.work();
    if !block.vouched && !could_lead(tree, branch, rules) {
        return Err(Refusal::LowWork);
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
    // A block that makes its branch the best is never short of room; one more side block is.
    let becomes_best = branch > tree.chain_work(&best).expect("the tip");
    if !becomes_best
        && (side.blocks + 1 > rules.max_side_blocks
            || side.bytes + block.bytes > rules.max_side_bytes)
    {
        return Err(Refusal::SideFull);
    }
    Ok(())
}

/// Whether the best chain has less work than the network's minimum (a node still syncing).
pub fn below_min_work(tree: &BlockTree, rules: &BranchRules) -> bool {
    tree.chain_work(&tree.best().1).expect("the tip") < rules.min_chain_work
}

/// The lowest height a side block counts against the room from (deeper ones can never be
/// reorganised to, and leave the file at the next start).
pub fn side_window(tree: &BlockTree, rules: &BranchRules) -> u64 {
    tree.best().0.saturating_sub(rules.max_fork_depth)
}

/// What the side blocks above [`side_window`] hold, with each block's bytes by `size_of`.
pub fn side_load(
    tree: &BlockTree,
    rules: &BranchRules,
    size_of: impl Fn(&bitcoin::BlockHash) -> u64,
) -> SideLoad {
    let lowest = side_window(tree, rules);
    tree.side_blocks()
        .filter(|(_, h)| *h > lowest)
        .fold(SideLoad::default(), |load, (hash, _)| SideLoad {
            blocks: load.blocks + 1,
            bytes: load.bytes + size_of(&hash),
        })
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

    static RULES: std::sync::LazyLock<BranchRules> = std::sync::LazyLock::new(|| BranchRules {
        margin_blocks: 6,
        max_fork_depth: 100,
        max_siblings: 4,
        max_side_blocks: 200,
        max_side_bytes: 1_000_000,
        min_chain_work: Work::from_be_bytes([0; 32]),
    });

    /// Judge a 1 kB block with the side branches empty.
    fn j(tree: &BlockTree, header: &Header, vouched: bool) -> Result<(), Refusal> {
        let block = Candidate {
            header,
            bytes: 1_000,
            vouched,
        };
        judge(tree, block, &RULES, SideLoad::default())
    }

    #[test]
    fn below_the_minimum_chain_work_only_vouched_blocks_are_stored() {
        let (tree, hashes) = chain(20);
        let tip_work = tree.chain_work(&hashes[20]).unwrap();
        let rules = BranchRules {
            min_chain_work: tip_work + tip_work,
            ..*RULES
        };
        let next = header(hashes[20], 7);
        let block = |vouched| Candidate {
            header: &next,
            bytes: 1_000,
            vouched,
        };
        assert!(below_min_work(&tree, &rules));
        assert_eq!(
            judge(&tree, block(false), &rules, SideLoad::default()),
            Err(Refusal::BelowMinWork),
            "not even on the tip"
        );
        assert_eq!(
            judge(&tree, block(true), &rules, SideLoad::default()),
            Ok(())
        );
        let reached = BranchRules {
            min_chain_work: tip_work,
            ..*RULES
        };
        assert!(!below_min_work(&tree, &reached));
        assert_eq!(
            judge(&tree, block(false), &reached, SideLoad::default()),
            Ok(())
        );
    }

    #[test]
    fn side_branches_have_room_for_a_bounded_count_and_bytes() {
        let (mut tree, hashes) = chain(300);
        let rules = BranchRules {
            max_side_blocks: 5,
            max_side_bytes: 10_000,
            ..*RULES
        };
        // Side blocks deeper than the fork depth do not count; those above it do.
        side(&mut tree, hashes[150], 1);
        let near = side(&mut tree, hashes[290], 4);
        let load = side_load(&tree, &rules, |_| 1_000);
        assert_eq!(
            load,
            SideLoad {
                blocks: 4,
                bytes: 4_000
            }
        );
        let next = header(near, 7);
        let one_more = |bytes, load| {
            let block = Candidate {
                header: &next,
                bytes,
                vouched: true,
            };
            judge(&tree, block, &rules, load)
        };
        assert_eq!(one_more(1_000, load), Ok(()));
        // Past the bytes, or past the count: refused.
        assert_eq!(one_more(6_001, load), Err(Refusal::SideFull));
        let full = SideLoad {
            blocks: 5,
            bytes: 5_000,
        };
        assert_eq!(one_more(1_000, full), Err(Refusal::SideFull));
        // Unless the block makes its branch the best: a reorganisation is never short of room.
        let long = side(&mut tree, hashes[295], 5);
        let (_, tip) = tree.best();
        assert_ne!(tip, long);
        let overtakes = header(long, 8);
        let block = Candidate {
            header: &overtakes,
            bytes: 1_000,
            vouched: false,
        };
        assert_eq!(judge(&tree, block, &rules, full), Ok(()));
    }

    #[test]
    fn a_parent_takes_a_bounded_number_of_children() {
        let (mut tree, hashes) = chain(20);
        // The tip's parent has one child (the tip); three more siblings fit, a fifth not.
        for nonce in 0..3 {
            assert_eq!(j(&tree, &header(hashes[19], 70 + nonce), false), Ok(()));
            tree.insert(header(hashes[19], 70 + nonce));
        }
        assert_eq!(tree.children(&hashes[19]), 4);
        assert_eq!(
            j(&tree, &header(hashes[19], 99), true),
            Err(Refusal::Crowded)
        );
    }

    #[test]
    fn the_tip_and_near_ties_are_kept_a_fork_far_behind_is_not() {
        let (tree, hashes) = chain(20);
        // Extending the tip, and a sibling of it: kept.
        assert_eq!(j(&tree, &header(hashes[20], 7), false), Ok(()));
        assert_eq!(j(&tree, &header(hashes[19], 7), false), Ok(()));
        // A branch that trails the tip by six blocks with this one: within the margin;
        // by seven: refused.
        assert_eq!(j(&tree, &header(hashes[13], 7), false), Ok(()));
        assert_eq!(
            j(&tree, &header(hashes[12], 7), false),
            Err(Refusal::LowWork)
        );
        // A fork at the genesis, as a peer that would fill the disk sends it.
        assert_eq!(
            j(&tree, &header(hashes[0], 7), false),
            Err(Refusal::LowWork)
        );
        // Unless a header chain with the work leads through it.
        assert_eq!(j(&tree, &header(hashes[0], 7), true), Ok(()));
    }

    #[test]
    fn a_branch_grows_while_it_keeps_up_and_a_deep_fork_is_refused_whatever_its_work() {
        let (mut tree, hashes) = chain(200);
        // A branch from 3 below the tip grows block by block: each stays within the margin.
        let tip = side(&mut tree, hashes[197], 3);
        assert_eq!(j(&tree, &header(tip, 7), false), Ok(()));
        // A branch from 150 blocks down, vouched by its headers: refused (past maturity).
        let deep = side(&mut tree, hashes[50], 140);
        assert!(matches!(
            j(&tree, &header(deep, 7), true),
            Err(Refusal::TooDeep { .. })
        ));
        assert!(matches!(
            j(&tree, &header(hashes[50], 7), true),
            Err(Refusal::TooDeep { fork_height: 50 })
        ));
        // At the depth allowed, exactly: kept.
        assert_eq!(j(&tree, &header(hashes[100], 7), true), Ok(()));
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
