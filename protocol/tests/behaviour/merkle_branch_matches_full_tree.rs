//! The coinbase merkle branch a pool sends folds back to the same root rust-bitcoin computes
//! over the whole transaction list, for every block size.

use proptest::prelude::*;
use protocol::bitcoin::hashes::Hash;
use protocol::bitcoin::{merkle_tree, TxMerkleNode, Txid};
use protocol::{merkle_branch_for_coinbase, merkle_root_from_branch};

proptest! {
    #[test]
    fn branch_folds_to_full_tree_root(seeds in proptest::collection::vec(any::<[u8; 32]>(), 1..40)) {
        let txids: Vec<Txid> = seeds.iter().map(|s| Txid::from_byte_array(*s)).collect();
        let full: TxMerkleNode = merkle_tree::calculate_root(txids.iter().map(|t| TxMerkleNode::from_byte_array(t.to_byte_array()))).unwrap();
        let branch = merkle_branch_for_coinbase(&txids[1..]);
        prop_assert_eq!(merkle_root_from_branch(txids[0], &branch), full);
    }
}
