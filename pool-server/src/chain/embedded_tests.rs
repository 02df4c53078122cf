//! The embedded chain end to end in one process: found blocks, retargets, the mempool, reopening
//! from the file, reorganisations and orphans.

use super::*;
use crate::chain::coinbase::CoinbaseBuilder;
use crate::chain::retarget::RetargetParams;
use bitcoin::block::Version as BlockVersion;
use bitcoin::hashes::Hash;
use bitcoin::{ScriptBuf, TxMerkleNode};
use protocol::CompactTarget;

/// A new chain whose blocks are kept in a file under `dir`.
fn open(dir: &tempfile::TempDir, params: ChainParams) -> (Arc<EmbeddedChain>, Option<Block>) {
    let (file, stored) = BlockFile::open(&dir.path().join("chain.blocks")).unwrap();
    EmbeddedChain::open(params, file, stored, vec![]).unwrap()
}

fn params(interval: u32) -> ChainParams {
    ChainParams {
        network: "test".into(),
        genesis_bits: CompactTarget::from_consensus(0x207fffff),
        pow_limit_bits: None,
        branches: Default::default(),
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

#[test]
fn side_blocks_past_the_fork_depth_leave_the_file_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = params(1000);
    p.branches.max_fork_depth = 3;
    let (chain, _) = open(&dir, p.clone());
    let (other, _) = open(&tempfile::tempdir().unwrap(), p.clone());
    let t0 = now_secs();
    let ours = mine(&chain, t0);
    chain.validate_and_append(&ours);
    for i in 1..=2 {
        let b = mine(&other, t0 + i);
        other.validate_and_append(&b);
        chain.accept(&b, Origin::Peer);
    }
    assert_eq!(
        chain.standing(&ours.block_hash()).map(|s| s.best),
        Some(false)
    );
    // Within the depth, a restart keeps the side block.
    drop(chain);
    let (chain, _) = open(&dir, p.clone());
    assert!(chain.knows(&ours.block_hash()));
    // Four blocks later its fork (the genesis) is deeper than a reorganisation may reach.
    for i in 0..4 {
        let b = mine(&chain, t0 + 10 + i);
        assert_eq!(chain.validate_and_append(&b), BlockVerdict::Accepted);
    }
    let tip = chain.tip();
    let bytes = chain.file.bytes();
    drop(chain);
    let (again, _) = open(&dir, p);
    assert_eq!(again.tip(), tip);
    assert!(
        !again.knows(&ours.block_hash()),
        "a dead side block is dropped"
    );
    assert!(again.file.bytes() < bytes);
    assert_eq!(again.file.len(), 7, "the genesis and six best blocks");
}
