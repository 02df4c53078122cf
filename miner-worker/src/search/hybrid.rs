//! The hybrid kernel: SHA-NI streams woven between the rounds of the AVX2 kernel, in one
//! thread.
//!
//! `sha256rnds2` and the message instructions run in the SHA unit; the AVX2 kernel keeps the
//! integer vector ALUs busy. Where the two are separate pipes, one thread issuing both could
//! beat either alone, past the SHA-NI bound. Each step hashes the 8 AVX2 lanes and, spread
//! evenly between their 122 rounds, `M` batches of `N` SHA-NI streams (62 two-round steps
//! each), so that the out-of-order core always has both kinds of work in its window.
//!
//! Measured on a Zen 5 (BENCHMARKS.md), the pipes do overlap (`--benchmark=full` prints how
//! much), yet the hybrid is slower than SHA-NI alone: the AVX2 kernel already issues about four
//! instructions per cycle from a loop larger than the op cache, so the front end, not the
//! vector ALUs, is its limit, and the SHA streams' instructions queue behind it. Calibration
//! measures every kernel and keeps the hybrid only where it is fastest.
//!
//! The SHA instructions exist only in legacy-SSE encoding and the AVX2 code leaves the upper
//! register halves dirty; CPUs that charge a transition for that lose here too.

use super::avx2::V8;
use super::lanes::{self, Interleave, Lanes, LANE_ROUNDS};
use super::sha_ni::{unroll, Batch, Unit, STEPS};
use super::{report_lanes, Kernel, Precomputed};

/// Whether this CPU can run the hybrid: SHA-NI and AVX2.
pub fn available() -> bool {
    super::sha_ni::available() && super::avx2::available()
}

/// The SHA-NI side: `M` batches of `N` streams, advanced a few steps after each vector round.
struct ShaSide<'a, const N: usize, const M: usize> {
    unit: &'a Unit,
    batch: Batch<N>,
    /// First nonce of the SHA-NI side in this step (after the vector lanes').
    first: u64,
    end: u64,
    top: u32,
    found: &'a mut Vec<u32>,
}

/// Most SHA-NI steps woven after one vector round.
const MAX_STEPS_PER_ROUND: usize = 8;

impl<const N: usize, const M: usize> ShaSide<'_, N, M> {
    /// Step `g` of the `STEPS * M` of this side, if `g < below`.
    #[inline(always)]
    fn maybe_step(&mut self, g: usize, below: usize) {
        if g >= below {
            return;
        }
        let s = g % STEPS;
        if s == 0 {
            self.batch.base = self.first + ((g / STEPS) * N) as u64;
        }
        // SAFETY: the hybrid kernels run only where `available` (SHA and the vector set).
        unsafe {
            self.batch
                .step(self.unit, s, self.end, self.top, self.found)
        }
    }
}

impl<const N: usize, const M: usize> Interleave for ShaSide<'_, N, M> {
    #[inline(always)]
    fn after_round(&mut self, i: usize) {
        const {
            assert!(STEPS * M <= MAX_STEPS_PER_ROUND * LANE_ROUNDS);
        }
        let total = STEPS * M;
        let (from, below) = (i * total / LANE_ROUNDS, (i + 1) * total / LANE_ROUNDS);
        unroll!(0 1 2 3 4 5 6 7; |K| { self.maybe_step(from + K, below); });
    }
}

#[target_feature(enable = "avx2,sha,ssse3,sse4.1")]
unsafe fn search_avx2<const N: usize, const M: usize>(
    pre: &Precomputed,
    start: u64,
    end: u64,
    top: u32,
    found: &mut Vec<u32>,
) {
    let unit = Unit::new(pre);
    let mut base = start;
    while base < end {
        let before = found.len();
        let mut side = ShaSide::<N, M> {
            unit: &unit,
            batch: Batch::new(),
            first: base + V8::LANES as u64,
            end,
            top,
            found,
        };
        let h7 = lanes::sha256d_h7_woven(pre, V8::counter(base as u32), &mut side);
        report_lanes(base, h7.le_mask(top), end, found);
        // The SHA-NI side reported its nonces first; keep the report in nonce order.
        found[before..].sort_unstable();
        base += (V8::LANES + N * M) as u64;
    }
}

/// SHA-NI streams per batch and batches per step: of the 2x2 to 4x4 geometries measured on a
/// Zen 5, the fastest (BENCHMARKS.md).
const STREAMS: usize = 2;
const BATCHES: usize = 6;

/// The hybrid kernel: 8 AVX2 lanes and [`BATCHES`] batches of [`STREAMS`] SHA-NI streams per
/// step, 20 nonces.
pub struct Hybrid;

impl Kernel for Hybrid {
    fn name(&self) -> &'static str {
        "avx2+sha-ni"
    }
    fn lanes(&self) -> usize {
        V8::LANES + STREAMS * BATCHES
    }
    fn search(&self, pre: &Precomputed, start: u64, end: u64, top: u32, found: &mut Vec<u32>) {
        assert!(
            available(),
            "avx2+sha-ni kernel called on a CPU without SHA-NI and AVX2"
        );
        unsafe { search_avx2::<STREAMS, BATCHES>(pre, start, end, top, found) }
    }
}
