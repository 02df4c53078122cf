//! Opening the embedded chain: the block tree rebuilt from the block file (headers only) and
//! whatever the database holds that the file lacks, dead side branches dropped, the file
//! brought in line with the tree.

use std::collections::HashSet;
use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::{EmbeddedChain, Mempool, OpenError, State, MAX_ORPHANS, MAX_ORPHAN_BYTES};
use crate::chain::block_file::{BlockFile, Durability, Entry};
use crate::chain::branch;
use crate::chain::rules::ChainParams;
use crate::chain::tree::{BlockTree, OrphanPool};

impl EmbeddedChain {
    /// Rebuild the chain from the blocks of its `file` (in file order) and any more the
    /// database holds (`from_db`, accepted blocks ascending), or start it at the genesis.
    /// Returns the chain and whether it is new (nothing was stored: record the genesis).
    pub fn open(
        params: ChainParams,
        file: BlockFile,
        from_file: Vec<Entry>,
        from_db: Vec<Block>,
    ) -> Result<(Arc<EmbeddedChain>, Option<Block>), OpenError> {
        // Height 0: the network's genesis, a pure function of its parameters, taken on trust
        // (no proof of work), as in Bitcoin.
        let genesis = params.genesis();
        let genesis_hash = genesis.block_hash();
        let stored_genesis = from_file
            .iter()
            .find(|e| e.height == 0)
            .map(|e| e.header.block_hash())
            .or(from_db
                .first()
                .filter(|b| b.header.prev_blockhash == BlockHash::all_zeros())
                .map(Block::block_hash));
        if let Some(stored) = stored_genesis.filter(|g| *g != genesis_hash) {
            return Err(OpenError::OtherChain {
                stored,
                ours: genesis_hash,
            });
        }
        let is_new = from_file.is_empty() && from_db.is_empty();
        let file_starts_at_genesis = from_file
            .first()
            .is_some_and(|e| e.header.block_hash() == genesis_hash);
        let in_file = from_file.len();
        let mut tree = BlockTree::new(genesis.header);
        // (height, hash, the block when the file lacks it): the file's blocks stay on disk.
        let mut kept: Vec<(u64, BlockHash, Option<Block>)> = vec![(
            0,
            genesis_hash,
            (!file_starts_at_genesis).then(|| genesis.clone()),
        )];
        let mut pending: Vec<(Header, Option<Block>)> = from_file
            .into_iter()
            .map(|e| (e.header, None))
            .chain(from_db.into_iter().map(|b| (b.header, Some(b))))
            .filter(|(h, _)| h.block_hash() != genesis_hash)
            .collect();
        // Parents come first in both sources, so one pass takes nearly everything; blocks the
        // database had before the file's last ones take another.
        loop {
            let before = pending.len();
            let mut rest = Vec::new();
            for (header, block) in pending {
                let hash = header.block_hash();
                if tree.contains(&hash) {
                    continue;
                }
                if tree.contains(&header.prev_blockhash) {
                    tree.insert(header);
                    let h = tree.height(&hash).expect("inserted");
                    kept.push((h, hash, block));
                } else {
                    rest.push((header, block));
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
        // Side branches that leave the best chain deeper than a reorganisation may reach are
        // of no use: they leave the tree and the file (so side blocks on disk stay bounded).
        let lowest = branch::side_window(&tree, &params.branches);
        let dead = tree.side_forked_below(lowest);
        if !dead.is_empty() {
            tracing::info!(
                blocks = dead.len(),
                max_fork_depth = params.branches.max_fork_depth,
                "side blocks deeper than a reorganisation may reach dropped from the chain file"
            );
            tree.forget_side(&dead);
            let dead: HashSet<BlockHash> = dead.into_iter().collect();
            kept.retain(|(_, hash, _)| !dead.contains(hash));
        }
        // The file keeps exactly the tree's blocks: append what only the database had, or
        // write it anew when it held anything else (a file of another layout, dropped blocks).
        let from_file_kept = kept.iter().filter(|k| k.2.is_none()).count();
        if file_starts_at_genesis && from_file_kept == in_file {
            for (h, _, b) in &kept {
                if let Some(b) = b {
                    file.append(*h, b, Durability::Written)?;
                }
            }
        } else {
            let blocks: Vec<(u64, BlockHash, Option<&Block>)> = kept
                .iter()
                .map(|(h, hash, b)| (*h, *hash, b.as_ref()))
                .collect();
            file.rewrite(&blocks)?;
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
}
