//! The embedded chain's genesis: a pure function of the network's name, its genesis bits and
//! its proof-of-work limit when that is not the genesis target, so pool-servers started apart,
//! with the same values, hold the same genesis block and can mine one chain as a network. Its time is fixed ([`GENESIS_TIME`]), its coinbase pays no one
//! (`OP_RETURN`) and names the network.
//!
//! The P2P magic, the four bytes that open every frame, derives from the genesis hash
//! ([`network_magic`]): a node of another network, or of the same name with other bits, is
//! refused at its first frame.

use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::p2p::Magic;
use bitcoin::{Block, BlockHash, ScriptBuf, TxMerkleNode};
use protocol::CompactTarget;

use super::coinbase::{subsidy, CoinbaseBuilder};

/// The genesis block's time: 2026-01-01T00:00:00Z. Fixed, not mined, so the difficulty
/// period that starts at the genesis is measured from block 1 (see `EmbeddedChain`).
pub const GENESIS_TIME: u32 = 1_767_225_600;

/// Longest network name: it goes into the genesis coinbase's script (at most 100 bytes).
pub const MAX_NETWORK_NAME: usize = 32;

/// Why a network name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkNameError {
    #[error("a network name cannot be empty")]
    Empty,
    #[error("a network name is at most {MAX_NETWORK_NAME} bytes; this one has {0}")]
    TooLong(usize),
    #[error("a network name is printable ASCII without spaces or '/'")]
    BadCharacter,
}

/// Check a network name: 1 to [`MAX_NETWORK_NAME`] printable ASCII characters, no `/`.
pub fn check_network_name(name: &str) -> Result<(), NetworkNameError> {
    if name.is_empty() {
        return Err(NetworkNameError::Empty);
    }
    if name.len() > MAX_NETWORK_NAME {
        return Err(NetworkNameError::TooLong(name.len()));
    }
    if !name.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
        return Err(NetworkNameError::BadCharacter);
    }
    Ok(())
}

/// The genesis block of the network `name` whose first blocks carry `bits` and whose blocks are
/// never easier than `pow_limit` (`None`: than the genesis). A limit other than the genesis
/// target is written into the genesis, so nodes that disagree on it are two networks and
/// refuse each other at the first frame (the magic); a network made without one keeps the
/// genesis it always had.
pub fn genesis_block(name: &str, bits: CompactTarget, pow_limit: Option<CompactTarget>) -> Block {
    let tag = match pow_limit.filter(|l| *l != bits) {
        Some(limit) => format!(
            "/rust-pool genesis {name} pow-limit {:08x}/",
            limit.to_consensus()
        ),
        None => format!("/rust-pool genesis {name}/"),
    };
    let coinbase = CoinbaseBuilder::new(ScriptBuf::new_op_return([]), &tag, 0)
        .build(0, subsidy(0), None, 0)
        .with_extranonce(&[]);
    let merkle_root = TxMerkleNode::from_byte_array(coinbase.compute_txid().to_byte_array());
    Block {
        header: Header {
            version: BlockVersion::ONE,
            prev_blockhash: BlockHash::all_zeros(),
            merkle_root,
            time: GENESIS_TIME,
            bits: bits.into(),
            nonce: 0,
        },
        txdata: vec![coinbase],
    }
}

/// The P2P magic of the network whose genesis is `genesis`: the hash's first four bytes.
pub fn network_magic(genesis: BlockHash) -> Magic {
    let b = genesis.to_byte_array();
    Magic::from_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const BITS: u32 = 0x1d01fffe;

    #[test]
    fn the_same_name_and_bits_give_the_same_genesis_whenever_it_is_made() {
        let a = genesis_block("alpha", CompactTarget::from_consensus(BITS), None);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = genesis_block("alpha", CompactTarget::from_consensus(BITS), None);
        assert_eq!(a.block_hash(), b.block_hash());
        assert_eq!(a.header.time, GENESIS_TIME);
        assert!(a.check_merkle_root());
        assert!(a.txdata[0].output[0].script_pubkey.is_op_return());
    }

    #[test]
    fn another_name_or_other_bits_is_another_network_with_another_magic() {
        let base = genesis_block("alpha", CompactTarget::from_consensus(BITS), None).block_hash();
        let named = genesis_block("beta", CompactTarget::from_consensus(BITS), None).block_hash();
        let bits =
            genesis_block("alpha", CompactTarget::from_consensus(0x207fffff), None).block_hash();
        let limit = CompactTarget::from_consensus(0x207fffff);
        let limited = genesis_block("alpha", CompactTarget::from_consensus(BITS), Some(limit));
        let limited = limited.block_hash();
        // The genesis target as the limit, said or not, is the same network.
        let said = CompactTarget::from_consensus(BITS);
        let same = genesis_block("alpha", CompactTarget::from_consensus(BITS), Some(said));
        assert_eq!(base, same.block_hash());
        assert_ne!(base, named);
        assert_ne!(base, bits);
        assert_ne!(base, limited);
        assert_ne!(network_magic(base), network_magic(limited));
        assert_ne!(network_magic(base), network_magic(named));
        assert_ne!(network_magic(base), network_magic(bits));
        for m in [
            Magic::BITCOIN,
            Magic::TESTNET3,
            Magic::TESTNET4,
            Magic::SIGNET,
            Magic::REGTEST,
        ] {
            assert_ne!(network_magic(base), m);
        }
    }

    #[test]
    fn network_names_are_short_printable_and_slash_free() {
        assert_eq!(check_network_name("pools-eu_1"), Ok(()));
        assert_eq!(check_network_name(""), Err(NetworkNameError::Empty));
        assert_eq!(
            check_network_name(&"x".repeat(33)),
            Err(NetworkNameError::TooLong(33))
        );
        for bad in ["a b", "a/b", "é"] {
            assert_eq!(
                check_network_name(bad),
                Err(NetworkNameError::BadCharacter),
                "{bad}"
            );
        }
        // The longest name still fits the coinbase script.
        let g = genesis_block(
            &"x".repeat(MAX_NETWORK_NAME),
            CompactTarget::from_consensus(BITS),
            Some(CompactTarget::from_consensus(0x207fffff)),
        );
        assert!(g.txdata[0].input[0].script_sig.len() <= 100);
    }
}
