//! The embedded chain's consensus rules, as pure functions over plain values: what a block
//! must be on its own (context-free), what it must be on top of its parent (contextual: bits
//! by the retarget rule on its own branch, time rules, BIP 34 height, coinbase amount), and the
//! bits and median time the next block is held to. No clock, no file, no lock: the caller
//! passes the time and the tree; `embedded.rs` keeps the state and applies these.

use std::collections::HashSet;

use bitcoin::{Amount, Block, BlockHash, Transaction};
use protocol::CompactTarget;

use super::coinbase::subsidy;
use super::retarget::{median_time_past, RetargetParams};
use super::tree::BlockTree;

/// Consensus maximum block weight.
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// Blocks may be at most this far ahead of our clock.
pub const MAX_FUTURE_SECS: u32 = 2 * 60 * 60;

#[derive(Debug, Clone)]
pub struct ChainParams {
    /// The network's name: with the genesis bits, it makes the genesis ([`super::genesis::genesis_block`]).
    pub network: String,
    pub genesis_bits: CompactTarget,
    /// The limit `--pow-limit` gave, part of the genesis (`None`: the genesis target, which
    /// `retarget.pow_limit` then is).
    pub pow_limit_bits: Option<CompactTarget>,
    pub retarget: RetargetParams,
    /// Which peers' branches are stored (policy, not consensus).
    pub branches: super::branch::BranchRules,
}

impl ChainParams {
    /// A network whose limit is its genesis target, retargeting every `interval` blocks
    /// toward 30 s, with the default branch rules.
    pub fn at_genesis_limit(network: &str, bits: CompactTarget, interval: u32) -> ChainParams {
        ChainParams {
            network: network.to_owned(),
            genesis_bits: bits,
            pow_limit_bits: None,
            retarget: RetargetParams {
                interval,
                block_time_secs: 30,
                pow_limit: bits.to_target().expect("bits that name a target"),
            },
            branches: Default::default(),
        }
    }

    /// This network's genesis block.
    pub fn genesis(&self) -> Block {
        super::genesis::genesis_block(&self.network, self.genesis_bits, self.pow_limit_bits)
    }
}

/// Checks that need no other block: proof of work against the block's own bits (within the
/// limit), the coinbase, the merkle root, duplicate transactions, weight. Cheap, and done
/// before a block with an unknown parent is kept, so junk never waits in the orphan pool.
pub fn check_context_free(params: &ChainParams, block: &Block) -> Result<(), &'static str> {
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
pub fn next_bits(params: &ChainParams, tree: &BlockTree, parent: BlockHash) -> CompactTarget {
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
pub fn median_time_past_at(tree: &BlockTree, tip: BlockHash) -> u32 {
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

/// Checks against the block's parent (which is in `tree`): bits by the retarget rule on that
/// branch, time rules, BIP 34 height, coinbase amount.
pub fn check_contextual(
    params: &ChainParams,
    tree: &BlockTree,
    block: &Block,
    now: u32,
) -> Result<(), &'static str> {
    let parent = block.header.prev_blockhash;
    let height = tree.height(&parent).expect("parent is stored") + 1;
    if CompactTarget::from(block.header.bits) != next_bits(params, tree, parent) {
        return Err("bad-diffbits");
    }
    if block.header.time <= median_time_past_at(tree, parent) {
        return Err("time-too-old");
    }
    if block.header.time > now + MAX_FUTURE_SECS {
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

#[cfg(test)]
mod tests {
    use bitcoin::block::{Header, Version};
    use bitcoin::hashes::Hash;
    use bitcoin::{ScriptBuf, TxMerkleNode};

    use super::*;
    use crate::chain::coinbase::CoinbaseBuilder;

    const EASY: u32 = 0x207fffff;

    fn params() -> ChainParams {
        ChainParams {
            network: "rules".into(),
            genesis_bits: CompactTarget::from_consensus(EASY),
            pow_limit_bits: None,
            branches: Default::default(),
            retarget: RetargetParams {
                interval: 10,
                block_time_secs: 30,
                pow_limit: CompactTarget::from_consensus(EASY).to_target().unwrap(),
            },
        }
    }

    /// A block on `parent` at `height` and `time`, paying `value`, mined at the easy bits.
    fn child(parent: &Header, height: u64, time: u32, value: Amount) -> Block {
        let parts = CoinbaseBuilder::new(ScriptBuf::from_bytes(vec![0x51]), "/r/", 8)
            .build(height, value, None, 1);
        let mut raw = parts.coinb1;
        raw.extend([0u8; 8]);
        raw.extend(parts.coinb2);
        let coinbase: Transaction = bitcoin::consensus::deserialize(&raw).unwrap();
        let mut block = Block {
            header: Header {
                version: Version::from_consensus(0x2000_0000),
                prev_blockhash: parent.block_hash(),
                merkle_root: TxMerkleNode::all_zeros(),
                time,
                bits: CompactTarget::from_consensus(EASY).into(),
                nonce: 0,
            },
            txdata: vec![coinbase],
        };
        block.header.merkle_root = block.compute_merkle_root().unwrap();
        let target = CompactTarget::from_consensus(EASY).to_target().unwrap();
        while !target.is_met_by(&block.block_hash()) {
            block.header.nonce += 1;
        }
        block
    }

    #[test]
    fn time_rules_are_judged_at_the_time_the_caller_gives() {
        let p = params();
        let genesis = p.genesis();
        let tree = BlockTree::new(genesis.header);
        let t = genesis.header.time + 600;
        let block = child(&genesis.header, 1, t, subsidy(1));
        assert_eq!(check_context_free(&p, &block), Ok(()));
        assert_eq!(check_contextual(&p, &tree, &block, t), Ok(()));
        // The same block, judged by a clock more than two hours behind it, is from the future.
        assert_eq!(
            check_contextual(&p, &tree, &block, t - MAX_FUTURE_SECS - 1),
            Err("time-too-new")
        );
        assert_eq!(
            check_contextual(&p, &tree, &block, t - MAX_FUTURE_SECS),
            Ok(())
        );
        // No later than the median time past of its parent: too old, whatever the clock.
        let old = child(&genesis.header, 1, genesis.header.time, subsidy(1));
        assert_eq!(check_contextual(&p, &tree, &old, t), Err("time-too-old"));
    }

    #[test]
    fn a_coinbase_paying_more_than_the_subsidy_is_refused() {
        let p = params();
        let genesis = p.genesis();
        let tree = BlockTree::new(genesis.header);
        let t = genesis.header.time + 1;
        let greedy = child(&genesis.header, 1, t, subsidy(1) + Amount::from_sat(1));
        assert_eq!(check_context_free(&p, &greedy), Ok(()));
        assert_eq!(
            check_contextual(&p, &tree, &greedy, t),
            Err("bad-cb-amount")
        );
    }

    #[test]
    fn a_block_without_work_or_with_a_wrong_root_is_refused_on_its_own() {
        let p = params();
        let genesis = p.genesis();
        let good = child(&genesis.header, 1, genesis.header.time + 1, subsidy(1));
        let mut root = good.clone();
        root.header.merkle_root = TxMerkleNode::all_zeros();
        while !CompactTarget::from_consensus(EASY)
            .to_target()
            .unwrap()
            .is_met_by(&root.block_hash())
        {
            root.header.nonce += 1;
        }
        assert_eq!(check_context_free(&p, &root), Err("bad-txnmrklroot"));
        let mut empty = good.clone();
        empty.txdata.clear();
        assert_eq!(check_context_free(&p, &empty), Err("bad-blk-length"));
        let mut hard = good;
        hard.header.bits = CompactTarget::from_consensus(0x1d00ffff).into();
        assert_eq!(check_context_free(&p, &hard), Err("high-hash"));
    }
}
