//! Headers presync: how a node still below the network's minimum chain work (see
//! `chain::min_work`) follows a peer's header chain without keeping it.
//!
//! Why: until its best chain has the minimum work, a node cannot judge a peer's blocks by
//! work against its own chain (any chain leads a new node), and keeping every header a peer
//! sends until they add up would let a stranger fill its memory with a long cheap chain. So,
//! as Bitcoin Core does (since 24.0):
//!
//! 1. **Presync**: the peer's headers are checked (they link, each carries its proof of work)
//!    and summed, and all that is kept is the last one, the work so far, and one bit of a
//!    salted hash of every [`COMMIT_EVERY`]th header: 8 KiB for a million headers, whatever
//!    the chain's work. A chain that ends below the minimum is forgotten, at no cost to anyone.
//! 2. **Proven**: once the sum reaches the minimum, the node keeps the height and hash of the
//!    header that reached it and asks for the headers again from its own tip, now to fetch
//!    their blocks. A batch is fetched only up to its last header whose bit matches, and a
//!    batch that reaches the proven height only if it holds the proven hash there (which, the
//!    headers being a hash chain, proves every header before it in the batch). A peer that
//!    answers with other headers than it showed is caught by the first bit that differs (half
//!    the time per bit; the salt is ours, so it cannot aim) and dropped.
//!
//! Pure: headers in, a step out; `sync.rs` sends what it asks for.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

use bitcoin::block::Header;
use bitcoin::{BlockHash, Work};

/// One bit is kept for every this many heights.
pub const COMMIT_EVERY: u64 = 16;
/// The longest header chain followed below the minimum work (its bits: 64 KiB).
pub const MAX_PRESYNC_HEADERS: u64 = 8_000_000;

/// What to do after a `headers` answer in presync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Ask for the headers after this one.
    More(BlockHash),
    /// The chain reached the minimum work: ask for the headers again from our tip.
    Proven,
    /// The peer's chain ends below the minimum: forget it.
    Ends,
}

/// Why a peer's headers are not followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresyncError {
    #[error("headers that do not follow the ones it sent before")]
    NotLinked,
    #[error(
        "a header chain of more than {MAX_PRESYNC_HEADERS} headers below the minimum chain work"
    )]
    TooLong,
    #[error("headers other than those it showed before (at height {0})")]
    Mismatch(u64),
}

/// A peer's header chain, followed without being kept.
#[derive(Debug)]
pub struct Presync {
    salt: RandomState,
    min_work: Work,
    /// Height of our block the chain starts on.
    fork_height: u64,
    last: BlockHash,
    height: u64,
    work: Work,
    /// One bit per committed height above the fork, 64 to a word.
    bits: Vec<u64>,
    /// The height and hash of the header that reached the minimum work.
    proven: Option<(u64, BlockHash)>,
}

impl Presync {
    /// Follow a chain that starts on our block `fork` at `fork_height`, whose chain has
    /// `fork_work`, toward `min_work`.
    pub fn begin(fork: BlockHash, fork_height: u64, fork_work: Work, min_work: Work) -> Presync {
        Presync {
            salt: RandomState::new(),
            min_work,
            fork_height,
            last: fork,
            height: fork_height,
            work: fork_work,
            bits: Vec::new(),
            proven: None,
        }
    }

    /// The last header followed (the next answer must build on it).
    pub fn last(&self) -> BlockHash {
        self.last
    }

    /// The height and hash of the header that reached the minimum work, once one did.
    pub fn proven(&self) -> Option<(u64, BlockHash)> {
        self.proven
    }

    /// Bytes held for the chain, whatever its length was.
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.bits.capacity() * 8
    }

    fn bit(&self, hash: &BlockHash) -> bool {
        self.salt.hash_one(hash) & 1 == 1
    }

    /// Where the bit of `height` is, when one is kept for it.
    fn slot(&self, height: u64) -> Option<usize> {
        (height > self.fork_height && height.is_multiple_of(COMMIT_EVERY))
            .then(|| (height / COMMIT_EVERY - self.fork_height / COMMIT_EVERY - 1) as usize)
    }

    /// Follow the next `headers` (whose proof of work the caller checked); `full`: the answer
    /// was as long as an answer may be, so the peer has more.
    pub fn feed(&mut self, headers: &[Header], full: bool) -> Result<Step, PresyncError> {
        debug_assert!(self.proven.is_none(), "a proven chain is not fed");
        for h in headers {
            if h.prev_blockhash != self.last {
                return Err(PresyncError::NotLinked);
            }
            self.last = h.block_hash();
            self.height += 1;
            self.work = self.work + h.work();
            if self.height - self.fork_height > MAX_PRESYNC_HEADERS {
                return Err(PresyncError::TooLong);
            }
            if let Some(slot) = self.slot(self.height) {
                if slot / 64 >= self.bits.len() {
                    self.bits.resize(slot / 64 + 1, 0);
                }
                if self.bit(&self.last) {
                    self.bits[slot / 64] |= 1 << (slot % 64);
                }
            }
            if self.work >= self.min_work {
                self.proven = Some((self.height, self.last));
                return Ok(Step::Proven);
            }
        }
        Ok(if full {
            Step::More(self.last)
        } else {
            Step::Ends
        })
    }

    /// After the proof: how many of `headers` (the first at `first_height`) to fetch the
    /// blocks of. Up to the proven height, only as far as the last header whose bit matches;
    /// a batch that reaches the proven height, whole, if it holds the proven hash there.
    pub fn verify(&self, first_height: u64, headers: &[Header]) -> Result<usize, PresyncError> {
        let (target_height, target) = self.proven.expect("verify follows the proof");
        let mut fetch = 0;
        for (i, h) in headers.iter().enumerate() {
            let height = first_height + i as u64;
            if height > target_height {
                return Ok(headers.len());
            }
            let hash = h.block_hash();
            if height == target_height {
                if hash != target {
                    return Err(PresyncError::Mismatch(height));
                }
                return Ok(headers.len());
            }
            if let Some(slot) = self.slot(height) {
                let kept = self.bits.get(slot / 64).map(|w| w >> (slot % 64) & 1 == 1);
                if kept != Some(self.bit(&hash)) {
                    return Err(PresyncError::Mismatch(height));
                }
                fetch = i + 1;
            }
        }
        Ok(fetch)
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::block::Version;
    use bitcoin::hashes::Hash;
    use bitcoin::{CompactTarget, TxMerkleNode};

    use super::*;

    /// `n` headers on `from` at the easiest bits (no proof of work is checked here).
    fn chain(from: BlockHash, n: u32, tag: u32) -> Vec<Header> {
        (0..n)
            .scan(from, |at, i| {
                let h = Header {
                    version: Version::ONE,
                    prev_blockhash: *at,
                    merkle_root: TxMerkleNode::all_zeros(),
                    time: tag,
                    bits: CompactTarget::from_consensus(0x207fffff),
                    nonce: i,
                };
                *at = h.block_hash();
                Some(h)
            })
            .collect()
    }

    fn work_of(headers: &[Header]) -> Work {
        headers
            .iter()
            .skip(1)
            .fold(headers[0].work(), |w, h| w + h.work())
    }

    #[test]
    fn a_chain_below_the_minimum_is_followed_in_constant_memory_and_forgotten() {
        let genesis = BlockHash::all_zeros();
        let zero = Work::from_be_bytes([0; 32]);
        let long = chain(genesis, 100_000, 1);
        let mut p = Presync::begin(genesis, 0, zero, work_of(&long) + work_of(&long[..20]));
        for batch in long.chunks(2_000) {
            let step = p.feed(batch, batch.len() == 2_000).unwrap();
            assert_eq!(step, Step::More(batch.last().unwrap().block_hash()));
        }
        // 100,000 headers of 80 bytes (8 MB), followed with under 2 kB.
        assert!(p.bytes() < 2_000, "{}", p.bytes());
        assert_eq!(p.feed(&chain(p.last(), 10, 1), false).unwrap(), Step::Ends);
        // Headers that do not build on the last are refused.
        let mut q = Presync::begin(genesis, 0, zero, work_of(&long));
        q.feed(&long[..2_000], true).unwrap();
        assert_eq!(
            q.feed(&long[3_000..4_000], true),
            Err(PresyncError::NotLinked)
        );
    }

    #[test]
    fn once_proven_only_the_headers_shown_are_fetched() {
        let genesis = BlockHash::all_zeros();
        let zero = Work::from_be_bytes([0; 32]);
        let honest = chain(genesis, 5_000, 1);
        let mut p = Presync::begin(genesis, 0, zero, work_of(&honest[..4_500]));
        let mut step = Step::More(genesis);
        for batch in honest.chunks(2_000) {
            step = p.feed(batch, batch.len() == 2_000).unwrap();
            if step == Step::Proven {
                break;
            }
        }
        assert_eq!(step, Step::Proven);
        assert_eq!(p.proven(), Some((4_500, honest[4_499].block_hash())));
        // The same headers again: a batch below the proven height is fetched up to its last
        // committed header (height 2000 is one), the one that reaches it whole.
        assert_eq!(p.verify(1, &honest[..2_000]), Ok(2_000));
        assert_eq!(p.verify(1, &honest[..1_990]), Ok(1_984));
        assert_eq!(p.verify(4_001, &honest[4_000..]), Ok(1_000));
        // Another chain from the same start is caught within a few bits: never fetched.
        let other = chain(genesis, 2_000, 2);
        assert!(matches!(
            p.verify(1, &other),
            Err(PresyncError::Mismatch(h)) if h <= 16 * 40
        ));
        // A chain that follows the honest one to 4,000 and then parts is refused at the
        // proven height, whatever its bits.
        let mut forked = honest[..4_499].to_vec();
        forked.extend(chain(honest[4_498].block_hash(), 501, 3));
        assert_eq!(
            p.verify(4_001, &forked[4_000..]),
            Err(PresyncError::Mismatch(4_500))
        );
    }

    #[test]
    fn a_chain_past_the_longest_followed_is_refused() {
        let genesis = BlockHash::all_zeros();
        let zero = Work::from_be_bytes([0; 32]);
        let mut p = Presync::begin(genesis, 0, zero, Work::from_be_bytes([0xff; 32]));
        p.height = MAX_PRESYNC_HEADERS - 1;
        p.fork_height = 0;
        let batch = chain(genesis, 2, 1);
        assert_eq!(p.feed(&batch, true), Err(PresyncError::TooLong));
    }
}
