//! The portable kernel: the hoisted SHA-256d core on plain `u32`, one nonce at a time. Runs
//! anywhere; the reference the vector kernels are measured against.

use super::{search_lanes, Kernel, Precomputed};

pub struct Scalar;

impl Kernel for Scalar {
    fn name(&self) -> &'static str {
        "scalar"
    }
    fn lanes(&self) -> usize {
        1
    }
    fn search(&self, pre: &Precomputed, start: u64, end: u64, top: u32, found: &mut Vec<u32>) {
        search_lanes::<u32>(pre, start, end, top, found)
    }
}
