//! Do SHA-NI and vector arithmetic run side by side in one thread? The hybrid kernels assume
//! the SHA unit and the vector ALUs are separate pipes; this measures it directly, so
//! `--benchmark=full` can say why a hybrid wins or loses on the CPU at hand.
//!
//! Alone: `sha256rnds2` on 8 independent chains, and `vpaddd ymm` (or `vpsrld ymm`) on 8
//! independent chains.
//! Together: one loop issuing both, in the proportion that takes each alone the same time.
//! The overlap is the time both would take one after the other over the time they took
//! together: 2.0 when the pipes are separate (the hybrid can add the two rates), 1.0 when they
//! share one pipe (the hybrid can only be as fast as the faster kernel, never faster).

use std::arch::x86_64::*;
use std::time::{Duration, Instant};

/// One measurement of SHA-NI beside one kind of AVX2 instruction.
#[derive(Debug, Clone, Copy)]
pub struct Overlap {
    /// `sha256rnds2` per second alone.
    pub sha_alone: f64,
    /// The vector instruction per second alone.
    pub vector_alone: f64,
    /// Vector instructions issued per `sha256rnds2` in the loop that runs both.
    pub vector_per_rnds2: u32,
    /// Time both would take one after the other over the time they took together.
    pub overlap: f64,
}

pub fn available() -> bool {
    crate::search::hybrid::available()
}

/// Measure for about `each` per loop (three loops), or `None` without SHA-NI and AVX2.
pub fn measure(kind: Vector, each: Duration) -> Option<Overlap> {
    // SAFETY: SHA-NI and AVX2 checked first.
    available().then(|| unsafe { measure_here(kind, each) })
}

/// The vector instruction measured beside SHA-NI: the AVX2 kernel's two kinds (its rotates
/// are pairs of shifts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vector {
    Add,
    Shift,
}

impl Vector {
    pub fn mnemonic(self) -> &'static str {
        match self {
            Vector::Add => "vpaddd",
            Vector::Shift => "vpsrld",
        }
    }
}

/// Iterations per second of a loop that runs, each iteration, one `sha256rnds2` on each of 8
/// chains (when `sha`) and `steps` steps of one `kind` instruction on each of 8 other chains.
#[target_feature(enable = "avx2,sha")]
unsafe fn loop_rate(each: Duration, kind: Vector, sha: bool, steps: u32) -> f64 {
    let mut s = [_mm_set1_epi32(1); 8];
    let b = _mm_set1_epi32(7);
    let wk = _mm_set1_epi32(3);
    let mut v = [_mm256_set1_epi32(1); 8];
    let k = _mm256_set1_epi32(3);
    let t = Instant::now();
    let mut iters = 0u64;
    while t.elapsed() < each {
        for _ in 0..256 {
            if sha {
                for x in s.iter_mut() {
                    *x = _mm_sha256rnds2_epu32(*x, b, wk);
                }
            }
            for _ in 0..steps {
                match kind {
                    Vector::Add => chain_step!(ymm_reg, v, [0 1 2 3 4 5 6 7], "vpaddd", ", {k}", k),
                    Vector::Shift => chain_step!(ymm_reg, v, [0 1 2 3 4 5 6 7], "vpsrld", ", 3"),
                }
            }
        }
        iters += 256;
    }
    std::hint::black_box((&s, &v));
    iters as f64 / t.elapsed().as_secs_f64()
}

#[target_feature(enable = "avx2,sha")]
unsafe fn measure_here(kind: Vector, each: Duration) -> Overlap {
    let sha_iters = loop_rate(each, kind, true, 0);
    let vector_iters = loop_rate(each, kind, false, 1);
    // As many vector steps per rnds2 step as take the same time alone.
    let steps = ((vector_iters / sha_iters).round() as u32).max(1);
    let together = loop_rate(each, kind, true, steps);
    let apart = 1.0 / sha_iters + steps as f64 / vector_iters;
    Overlap {
        sha_alone: sha_iters * 8.0,
        vector_alone: vector_iters * 8.0,
        vector_per_rnds2: steps,
        overlap: apart * together,
    }
}
