//! The minimum chain work: below it, a node stores no peer's block.
//!
//! Why: a node syncing from scratch cannot tell an honest chain from a cheap one by looking at
//! the first blocks, and work before storage ([`super::branch`]) measures a peer's branch
//! against the node's own best chain, which on a new node is the genesis: any chain leads it.
//! So, as Bitcoin Core does with `-minimumchainwork`, a network states the work its chain
//! had at a release, and until the node's best chain has that much it fetches a peer's blocks
//! only after the peer showed a header chain that reaches it (`crate::p2p::presync`).
//!
//! A value is built in per known network (its name and genesis bits), updated as each grows;
//! `--min-chain-work` overrides it. The default network has no shared history yet, so the
//! value built in for it is the genesis's own work: it holds back nothing until a release
//! raises it.

use bitcoin::Work;
use protocol::CompactTarget;

/// A network whose minimum chain work this release knows.
struct Known {
    network: &'static str,
    genesis_bits: u32,
    /// Hex, as `--min-chain-work` takes it.
    min_chain_work: &'static str,
}

/// Networks this release knows, with the work their chain had when it was made.
const KNOWN: &[Known] = &[Known {
    network: "rust-pool",
    genesis_bits: 0x1d01fffe,
    // The genesis's own work at bits 1d01fffe: nothing held back yet.
    min_chain_work: "0000000000000000000000000000000000000000000000000000000080008000",
}];

/// The minimum chain work built in for the network `network` with `genesis_bits`, if any.
pub fn built_in(network: &str, genesis_bits: CompactTarget) -> Option<Work> {
    KNOWN
        .iter()
        .find(|k| k.network == network && k.genesis_bits == genesis_bits.to_consensus())
        .map(|k| Work::from_unprefixed_hex(k.min_chain_work).expect("a valid built-in value"))
}

/// No minimum: every chain has at least this much.
pub fn none() -> Work {
    Work::from_be_bytes([0; 32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_network_holds_back_nothing_beyond_its_genesis() {
        let bits = CompactTarget::from_consensus(0x1d01fffe);
        let genesis_work =
            bitcoin::Target::from_compact(bitcoin::CompactTarget::from_consensus(0x1d01fffe))
                .to_work();
        assert_eq!(built_in("rust-pool", bits), Some(genesis_work));
        assert_eq!(built_in("another", bits), None);
        assert_eq!(
            built_in("rust-pool", CompactTarget::from_consensus(0x207fffff)),
            None
        );
    }
}
