//! Per-session duplicate detection.
//!
//! Extranonce1 is unique per session, so two sessions can never produce the same header and a
//! per-session set is complete. The set holds 8 bytes of each accepted share's hash and empties
//! itself when the chain tip moves (every older job is stale then anyway), so its size is
//! bounded by one tip's worth of shares.

use std::collections::HashSet;

use bitcoin::hashes::Hash;
use bitcoin::BlockHash;

#[derive(Debug, Default)]
pub struct Dedup {
    generation: u64,
    seen: HashSet<u64>,
}

impl Dedup {
    /// Record a share's hash; `false` when it was seen before in this generation.
    pub fn insert(&mut self, generation: u64, hash: &BlockHash) -> bool {
        if generation != self.generation {
            self.generation = generation;
            self.seen.clear();
            self.seen.shrink_to(64);
        }
        let b = hash.as_byte_array();
        let key = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"))
            ^ u64::from_le_bytes(b[24..].try_into().expect("8 bytes"));
        self.seen.insert(key)
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}
