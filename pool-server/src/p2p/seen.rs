//! Blocks already seen, so that none is relayed (or fetched) twice: a node hears of each new
//! block from every peer, and without this would announce it back to all of them in a loop.
//! Bounded: the oldest hashes go first, long after any peer would still announce them.

use std::collections::{HashSet, VecDeque};

use bitcoin::BlockHash;

/// The most recent block hashes seen, at most `capacity`.
#[derive(Debug)]
pub struct Seen {
    set: HashSet<BlockHash>,
    order: VecDeque<BlockHash>,
    capacity: usize,
}

impl Seen {
    pub fn new(capacity: usize) -> Self {
        Seen {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Record `hash`; true the first time (relay it), false after (do not).
    pub fn first_time(&mut self, hash: BlockHash) -> bool {
        if !self.set.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }

    pub fn contains(&self, hash: &BlockHash) -> bool {
        self.set.contains(hash)
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn h(n: u32) -> BlockHash {
        let mut b = [0u8; 32];
        b[..4].copy_from_slice(&n.to_le_bytes());
        BlockHash::from_byte_array(b)
    }

    #[test]
    fn a_hash_is_new_once_and_the_set_forgets_the_oldest_past_its_capacity() {
        let mut seen = Seen::new(3);
        assert!(seen.first_time(h(1)));
        assert!(!seen.first_time(h(1)), "never relayed twice");
        for n in 2..=4 {
            assert!(seen.first_time(h(n)));
        }
        assert_eq!(seen.len(), 3);
        assert!(!seen.contains(&h(1)), "the oldest went");
        assert!(seen.contains(&h(4)));
        for n in 5..10_000 {
            seen.first_time(h(n));
        }
        assert_eq!(seen.len(), 3, "bounded whatever arrives");
    }
}
