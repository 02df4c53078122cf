//! x86 SHA extensions: `sha256rnds2` does two rounds per instruction, so a nonce costs 62 of
//! them (31 per hash: rounds 0..1 of the first hash are precomputed per work unit, and the
//! second hash stops after round 61, where the final H7 is already known). One chain of
//! `sha256rnds2` is latency-bound, so `N` nonces are interleaved to keep the unit busy.
//!
//! The message schedule costs 20 `sha256msg1` and 23 `sha256msg2` per nonce; the rest of it
//! depends on padding or on the work unit only and is computed once per call. On AMD Zen
//! `sha256msg2` takes two cycles of the pipe `sha256rnds2` needs, so those 23 matter as much
//! as the rounds (`--benchmark` prints both bounds). Doing some of them with plain shifts and
//! shuffles instead measured slower there: the replacement costs more issue slots than it frees.
//!
//! Every message group is expanded at compile time (`unroll!`): with constant indices the
//! message arrays live in registers. As a loop they lived on the stack, and on Zen 3 that
//! cost a fifth of the speed.
//!
//! These are legacy-SSE instructions: if the upper halves of the vector registers are dirty
//! (AVX2/AVX-512 code ran before on this thread without `vzeroupper`), some CPUs run them many
//! times slower. The kernel clears the upper state on entry when the CPU has AVX.

// Stream loops index several parallel arrays by the same `i`; iterators would hide that.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::lanes::{Lanes, K};
use super::{Kernel, Precomputed};
use protocol::sha256d::SHA256_IV;

/// SHA instructions the kernel issues per nonce (the benchmark's bound issues the same mix).
pub const RNDS2_PER_NONCE: u32 = 62;
pub const MSG1_PER_NONCE: u32 = 20;
pub const MSG2_PER_NONCE: u32 = 23;

pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("sha")
        && std::arch::is_x86_feature_detected!("sse4.1")
        && std::arch::is_x86_feature_detected!("ssse3")
}

/// Clear the upper halves of the vector registers before legacy-SSE code runs.
#[target_feature(enable = "avx")]
unsafe fn zero_upper() {
    _mm256_zeroupper();
}

#[inline(always)]
unsafe fn kv(t: usize) -> __m128i {
    _mm_set_epi32(
        K[t + 3] as i32,
        K[t + 2] as i32,
        K[t + 1] as i32,
        K[t] as i32,
    )
}

/// (ABEF, CDGH) from a state a..h, the layout `sha256rnds2` works on.
#[inline(always)]
unsafe fn pack(s: &[u32; 8]) -> (__m128i, __m128i) {
    (
        _mm_set_epi32(s[0] as i32, s[1] as i32, s[4] as i32, s[5] as i32),
        _mm_set_epi32(s[2] as i32, s[3] as i32, s[6] as i32, s[7] as i32),
    )
}

/// Two rounds on N streams: `(abef, cdgh) <- (rnds2(cdgh, abef, wk), abef)`.
#[inline(always)]
unsafe fn two_rounds<const N: usize>(
    abef: &mut [__m128i; N],
    cdgh: &mut [__m128i; N],
    wk: &[__m128i; N],
) {
    for i in 0..N {
        let next = _mm_sha256rnds2_epu32(cdgh[i], abef[i], wk[i]);
        cdgh[i] = abef[i];
        abef[i] = next;
    }
}

/// Expand `$body` once per listed number, bound to `$g` as a constant, so every
/// message-array index is known at compile time and the arrays live in registers.
macro_rules! unroll {
    ($($n:literal)*; |$g:ident| $body:block) => {
        $({
            const $g: usize = $n;
            $body
        })*
    };
}
pub(crate) use unroll;

/// Next message group from the previous four: `msg2(msg1(m0, m1) + alignr(m3, m2), m3)`.
/// Callers pass precomputed `msg1` / `alignr` terms where their inputs are constant padding.
#[inline(always)]
unsafe fn next_group_from(
    msg1: Option<__m128i>,
    align: Option<__m128i>,
    m: [__m128i; 4],
) -> __m128i {
    let a = msg1.unwrap_or_else(|| _mm_sha256msg1_epu32(m[0], m[1]));
    let b = align.unwrap_or_else(|| _mm_alignr_epi8(m[3], m[2], 4));
    _mm_sha256msg2_epu32(_mm_add_epi32(a, b), m[3])
}

/// What every nonce of one work unit shares: the midstate packed for `sha256rnds2`, the state
/// after rounds 0 and 1, and the message-schedule terms whose inputs are all constant.
pub(crate) struct Unit {
    tail: [u32; 3],
    abef0: __m128i,
    cdgh0: __m128i,
    abef2: __m128i,
    cdgh2: __m128i,
    /// Message groups 1..3 of the first hash (padding) with K folded in.
    wk: [__m128i; 3],
    first_align4: __m128i,
    first_sigma1_4: __m128i,
    first_msg1: [__m128i; 3],
    second_align4: __m128i,
    second_msg1_6: __m128i,
}

const PAD1: u32 = 0x8000_0000;
const PAD3_FIRST: u32 = 640;
const PAD3_SECOND: u32 = 256;

impl Unit {
    #[inline(always)]
    pub(crate) unsafe fn new(pre: &Precomputed) -> Self {
        let (abef0, cdgh0) = pack(&pre.midstate);
        // Rounds 0 and 1 use constant words: once per work unit.
        let wk01 = _mm_set_epi32(
            0,
            0,
            K[1].wrapping_add(pre.tail[1]) as i32,
            K[0].wrapping_add(pre.tail[0]) as i32,
        );
        let pad1 = _mm_set_epi32(0, 0, 0, PAD1 as i32);
        let pad3 = _mm_set_epi32(PAD3_FIRST as i32, 0, 0, 0);
        let zero = _mm_setzero_si128();
        // W16 and W17 depend on the work unit only, so group 4 needs no `sha256msg2` (its
        // sigma1 terms are of W14..W17, all fixed) and group 7's `sha256msg1` (of W12..W16) is
        // fixed too.
        let w16 = pre.tail[0].wrapping_add(u32::small_sigma0(pre.tail[1]));
        let w17 = pre.tail[1]
            .wrapping_add(u32::small_sigma0(pre.tail[2]))
            .wrapping_add(u32::small_sigma1(PAD3_FIRST));
        let h2_pad2 = _mm_set_epi32(0, 0, 0, PAD1 as i32);
        let h2_pad3 = _mm_set_epi32(PAD3_SECOND as i32, 0, 0, 0);
        Unit {
            tail: pre.tail,
            abef0,
            cdgh0,
            abef2: _mm_sha256rnds2_epu32(cdgh0, abef0, wk01),
            cdgh2: abef0,
            wk: [
                _mm_add_epi32(pad1, kv(4)),
                kv(8),
                _mm_add_epi32(pad3, kv(12)),
            ],
            first_align4: _mm_alignr_epi8(pad3, zero, 4),
            first_sigma1_4: _mm_set_epi32(
                u32::small_sigma1(w17) as i32,
                u32::small_sigma1(w16) as i32,
                u32::small_sigma1(PAD3_FIRST) as i32,
                0,
            ),
            first_msg1: [
                _mm_sha256msg1_epu32(pad1, zero),
                _mm_sha256msg1_epu32(zero, pad3),
                _mm_sha256msg1_epu32(pad3, _mm_set_epi32(0, 0, 0, w16 as i32)),
            ],
            second_align4: _mm_alignr_epi8(h2_pad3, h2_pad2, 4),
            second_msg1_6: _mm_sha256msg1_epu32(h2_pad2, h2_pad3),
        }
    }
}

/// Steps of [`Batch::step`] per nonce: each is two rounds (one `sha256rnds2`), 31 per hash.
pub(crate) const STEPS: usize = 31 * 2;

/// `N` nonces in flight through the [`STEPS`] of a SHA-256d, one step at a time, so that the
/// plain kernel runs them back to back and the hybrid kernel between vector rounds.
pub(crate) struct Batch<const N: usize> {
    /// First nonce of the batch.
    pub(crate) base: u64,
    abef: [__m128i; N],
    cdgh: [__m128i; N],
    /// Message groups of the hash under way (the second hash reuses the array).
    m: [[__m128i; N]; 16],
    /// K + W of the step's group, whose high half the next step uses.
    wk: [__m128i; N],
}

impl<const N: usize> Batch<N> {
    #[inline(always)]
    pub(crate) unsafe fn new() -> Self {
        let zero = _mm_setzero_si128();
        Batch {
            base: 0,
            abef: [zero; N],
            cdgh: [zero; N],
            m: [[zero; N]; 16],
            wk: [zero; N],
        }
    }

    /// Two rounds with the low half of the group in `wk` (after adding K of group `g` to `m`).
    #[inline(always)]
    unsafe fn low_half(&mut self, g: usize) {
        let k = kv(4 * g);
        for i in 0..N {
            self.wk[i] = _mm_add_epi32(self.m[g][i], k);
        }
        two_rounds(&mut self.abef, &mut self.cdgh, &self.wk);
    }

    /// Two rounds with the high half of the group of the previous step.
    #[inline(always)]
    unsafe fn high_half(&mut self) {
        for w in self.wk.iter_mut() {
            *w = _mm_shuffle_epi32(*w, 0x0e);
        }
        two_rounds(&mut self.abef, &mut self.cdgh, &self.wk);
    }

    /// Step `s` (`0..STEPS`, a constant wherever this is inlined) of the batch at `self.base`;
    /// the last one reports the nonces below `end` whose hash's top word is `<= top`.
    #[inline(always)]
    pub(crate) unsafe fn step(
        &mut self,
        u: &Unit,
        s: usize,
        end: u64,
        top: u32,
        found: &mut Vec<u32>,
    ) {
        let zero = _mm_setzero_si128();
        match s {
            // Rounds 2 and 3 (the nonce's), from the state after rounds 0 and 1.
            0 => {
                for i in 0..N {
                    let nonce = (self.base as u32).wrapping_add(i as u32).swap_bytes();
                    self.abef[i] = u.abef2;
                    self.cdgh[i] = u.cdgh2;
                    self.m[0][i] = _mm_set_epi32(
                        nonce as i32,
                        u.tail[2] as i32,
                        u.tail[1] as i32,
                        u.tail[0] as i32,
                    );
                    self.m[1][i] = _mm_set_epi32(0, 0, 0, PAD1 as i32);
                    self.m[2][i] = zero;
                    self.m[3][i] = _mm_set_epi32(PAD3_FIRST as i32, 0, 0, 0);
                    self.wk[i] = _mm_add_epi32(self.m[0][i], kv(0));
                }
                self.high_half();
            }
            // Rounds 4..15: constant words.
            1..=6 => {
                let c = u.wk[(s - 1) / 2];
                self.wk = [c; N];
                // Steps 1, 3, 5 take the low half of a group, 2, 4, 6 its high half.
                if s % 2 == 1 {
                    two_rounds(&mut self.abef, &mut self.cdgh, &self.wk);
                } else {
                    self.high_half();
                }
            }
            // Rounds 16..63 of the first hash.
            7..=30 => {
                let g = 4 + (s - 7) / 2;
                if (s - 7) % 2 == 1 {
                    return self.high_half();
                }
                let msg1 = match g {
                    5..=7 => Some(u.first_msg1[g - 5]),
                    _ => None,
                };
                for i in 0..N {
                    let m = &mut self.m;
                    m[g][i] = if g == 4 {
                        let x =
                            _mm_add_epi32(_mm_sha256msg1_epu32(m[0][i], m[1][i]), u.first_align4);
                        _mm_add_epi32(x, u.first_sigma1_4)
                    } else {
                        next_group_from(
                            msg1,
                            None,
                            [m[g - 4][i], m[g - 3][i], m[g - 2][i], m[g - 1][i]],
                        )
                    };
                }
                self.low_half(g);
            }
            // Rounds 0..15 of the second hash: the first digest, back in word order.
            31..=38 => {
                let g = (s - 31) / 2;
                if (s - 31) % 2 == 1 {
                    return self.high_half();
                }
                if g == 0 {
                    let (iv_abef, iv_cdgh) = pack(&SHA256_IV);
                    for i in 0..N {
                        let a = _mm_add_epi32(self.abef[i], u.abef0);
                        let c = _mm_add_epi32(self.cdgh[i], u.cdgh0);
                        // a = (A,B,E,F) c = (C,D,G,H), high to low lanes.
                        let feba = _mm_shuffle_epi32(a, 0x1b);
                        let dchg = _mm_shuffle_epi32(c, 0xb1);
                        self.m[0][i] = _mm_blend_epi16(feba, dchg, 0xf0); // D C B A
                        self.m[1][i] = _mm_alignr_epi8(dchg, feba, 8); // H G F E
                        self.m[2][i] = _mm_set_epi32(0, 0, 0, PAD1 as i32);
                        self.m[3][i] = _mm_set_epi32(PAD3_SECOND as i32, 0, 0, 0);
                        self.abef[i] = iv_abef;
                        self.cdgh[i] = iv_cdgh;
                    }
                }
                self.low_half(g);
            }
            // Rounds 16..59 of the second hash.
            39..=60 => {
                let g = 4 + (s - 39) / 2;
                if (s - 39) % 2 == 1 {
                    return self.high_half();
                }
                let msg1 = (g == 6).then_some(u.second_msg1_6);
                let align = (g == 4).then_some(u.second_align4);
                for i in 0..N {
                    let m = &mut self.m;
                    m[g][i] = next_group_from(
                        msg1,
                        align,
                        [m[g - 4][i], m[g - 3][i], m[g - 2][i], m[g - 1][i]],
                    );
                }
                self.low_half(g);
            }
            // Rounds 60 and 61: lane 0 of ABEF is then f, which is h after round 63.
            _ => {
                for i in 0..N {
                    let m = &mut self.m;
                    m[15][i] =
                        next_group_from(None, None, [m[11][i], m[12][i], m[13][i], m[14][i]]);
                }
                self.low_half(15);
                for (i, abef) in self.abef.iter().enumerate() {
                    let h7 = (_mm_cvtsi128_si32(*abef) as u32).wrapping_add(SHA256_IV[7]);
                    let nonce = self.base + i as u64;
                    if h7.swap_bytes() <= top && nonce < end {
                        found.push(nonce as u32);
                    }
                }
            }
        }
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn search_n<const N: usize>(
    pre: &Precomputed,
    start: u64,
    end: u64,
    top: u32,
    found: &mut Vec<u32>,
) {
    let u = Unit::new(pre);
    let mut b = Batch::<N>::new();
    b.base = start;
    while b.base < end {
        unroll!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30
            31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61;
            |S| { b.step(&u, S, end, top, found); });
        b.base += N as u64;
    }
}

/// The SHA-NI kernel with `N` nonces in flight.
pub struct ShaNi<const N: usize>;

impl<const N: usize> Kernel for ShaNi<N> {
    fn name(&self) -> &'static str {
        match N {
            1 => "sha-ni",
            2 => "sha-ni-x2",
            3 => "sha-ni-x3",
            4 => "sha-ni-x4",
            6 => "sha-ni-x6",
            _ => "sha-ni-xn",
        }
    }
    fn lanes(&self) -> usize {
        N
    }
    fn search(&self, pre: &Precomputed, start: u64, end: u64, top: u32, found: &mut Vec<u32>) {
        assert!(
            available(),
            "sha-ni kernel called on a CPU without SHA extensions"
        );
        unsafe {
            if std::arch::is_x86_feature_detected!("avx") {
                zero_upper();
            }
            search_n::<N>(pre, start, end, top, found)
        }
    }
}
