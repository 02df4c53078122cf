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

/// Four rounds with message group `m` (K added here).
#[inline(always)]
unsafe fn four_rounds<const N: usize>(
    abef: &mut [__m128i; N],
    cdgh: &mut [__m128i; N],
    m: &[__m128i; N],
    t: usize,
) {
    let k = kv(t);
    let mut wk = [_mm_setzero_si128(); N];
    for i in 0..N {
        wk[i] = _mm_add_epi32(m[i], k);
    }
    two_rounds(abef, cdgh, &wk);
    for w in wk.iter_mut() {
        *w = _mm_shuffle_epi32(*w, 0x0e);
    }
    two_rounds(abef, cdgh, &wk);
}

/// Expand `$body` once per listed group number, bound to `$g` as a constant, so every
/// message-array index is known at compile time and the arrays live in registers.
macro_rules! unroll {
    ($($n:literal)*; |$g:ident| $body:block) => {
        $({
            const $g: usize = $n;
            $body
        })*
    };
}

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

#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
unsafe fn search_n<const N: usize>(
    pre: &Precomputed,
    start: u64,
    end: u64,
    top: u32,
    found: &mut Vec<u32>,
) {
    let (abef0, cdgh0) = pack(&pre.midstate);
    // Rounds 0 and 1 use constant words: once per work unit.
    let wk01 = _mm_set_epi32(
        0,
        0,
        K[1].wrapping_add(pre.tail[1]) as i32,
        K[0].wrapping_add(pre.tail[0]) as i32,
    );
    let abef2 = _mm_sha256rnds2_epu32(cdgh0, abef0, wk01);
    let cdgh2 = abef0;
    // Constant message groups of the first hash (padding) with K folded in.
    let wk4 = _mm_add_epi32(_mm_set_epi32(0, 0, 0, 0x8000_0000u32 as i32), kv(4));
    let wk8 = kv(8);
    let wk12 = _mm_add_epi32(_mm_set_epi32(640, 0, 0, 0), kv(12));
    let pad1 = _mm_set_epi32(0, 0, 0, 0x8000_0000u32 as i32);
    let pad3 = _mm_set_epi32(640, 0, 0, 0);
    let zero = _mm_setzero_si128();
    let (iv_abef, iv_cdgh) = pack(&SHA256_IV);
    let h2_pad2 = _mm_set_epi32(0, 0, 0, 0x8000_0000u32 as i32);
    let h2_pad3 = _mm_set_epi32(256, 0, 0, 0);
    // Message-schedule terms whose inputs are all padding: the same for every nonce.
    let first_align4 = _mm_alignr_epi8(pad3, zero, 4);
    let first_msg1_5 = _mm_sha256msg1_epu32(pad1, zero);
    let first_msg1_6 = _mm_sha256msg1_epu32(zero, pad3);
    // W16 and W17 depend on the work unit only, so group 4 needs no `sha256msg2` (its sigma1
    // terms are of W14..W17, all fixed) and group 7's `sha256msg1` (of W12..W16) is fixed too.
    let w16 = pre.tail[0].wrapping_add(u32::small_sigma0(pre.tail[1]));
    let w17 = pre.tail[1]
        .wrapping_add(u32::small_sigma0(pre.tail[2]))
        .wrapping_add(u32::small_sigma1(640));
    let first_sigma1_4 = _mm_set_epi32(
        u32::small_sigma1(w17) as i32,
        u32::small_sigma1(w16) as i32,
        u32::small_sigma1(640) as i32,
        0,
    );
    let first_msg1_7 = _mm_sha256msg1_epu32(pad3, _mm_set_epi32(0, 0, 0, w16 as i32));
    let second_align4 = _mm_alignr_epi8(h2_pad3, h2_pad2, 4);
    let second_msg1_6 = _mm_sha256msg1_epu32(h2_pad2, h2_pad3);

    let mut base = start;
    while base < end {
        let mut abef = [abef2; N];
        let mut cdgh = [cdgh2; N];
        let mut m: [[__m128i; N]; 16] = [[zero; N]; 16];
        for i in 0..N {
            let nonce = (base as u32).wrapping_add(i as u32).swap_bytes();
            m[0][i] = _mm_set_epi32(
                nonce as i32,
                pre.tail[2] as i32,
                pre.tail[1] as i32,
                pre.tail[0] as i32,
            );
            m[1][i] = pad1;
            m[2][i] = zero;
            m[3][i] = pad3;
        }
        // Rounds 2 and 3 (the nonce's).
        let mut wk = [zero; N];
        for i in 0..N {
            wk[i] = _mm_shuffle_epi32(_mm_add_epi32(m[0][i], kv(0)), 0x0e);
        }
        two_rounds(&mut abef, &mut cdgh, &wk);
        // Rounds 4..15: constant words.
        for c in [wk4, wk8, wk12] {
            let lo = [c; N];
            two_rounds(&mut abef, &mut cdgh, &lo);
            let hi = [_mm_shuffle_epi32(c, 0x0e); N];
            two_rounds(&mut abef, &mut cdgh, &hi);
        }
        // Rounds 16..63.
        unroll!(4 5 6 7 8 9 10 11 12 13 14 15; |G| {
            let g = G;
            let msg1 = match g {
                5 => Some(first_msg1_5),
                6 => Some(first_msg1_6),
                7 => Some(first_msg1_7),
                _ => None,
            };
            for i in 0..N {
                m[g][i] = if g == 4 {
                    let x = _mm_add_epi32(_mm_sha256msg1_epu32(m[0][i], m[1][i]), first_align4);
                    _mm_add_epi32(x, first_sigma1_4)
                } else {
                    next_group_from(
                        msg1,
                        None,
                        [m[g - 4][i], m[g - 3][i], m[g - 2][i], m[g - 1][i]],
                    )
                };
            }
            let mg = m[g];
            four_rounds(&mut abef, &mut cdgh, &mg, 4 * g);
        });
        // Digest of the first hash, back in word order: the second hash's message.
        let mut d = [[zero; N]; 4];
        for i in 0..N {
            let a = _mm_add_epi32(abef[i], abef0);
            let c = _mm_add_epi32(cdgh[i], cdgh0);
            // a = (A,B,E,F) c = (C,D,G,H), high to low lanes.
            let feba = _mm_shuffle_epi32(a, 0x1b);
            let dchg = _mm_shuffle_epi32(c, 0xb1);
            d[0][i] = _mm_blend_epi16(feba, dchg, 0xf0); // D C B A
            d[1][i] = _mm_alignr_epi8(dchg, feba, 8); // H G F E
            d[2][i] = h2_pad2;
            d[3][i] = h2_pad3;
        }
        let mut abef = [iv_abef; N];
        let mut cdgh = [iv_cdgh; N];
        let mut m2: [[__m128i; N]; 16] = [[zero; N]; 16];
        m2[..4].copy_from_slice(&d);
        unroll!(0 1 2 3; |G| {
            let mg = m2[G];
            four_rounds(&mut abef, &mut cdgh, &mg, 4 * G);
        });
        unroll!(4 5 6 7 8 9 10 11 12 13 14; |G| {
            let g = G;
            let msg1 = (g == 6).then_some(second_msg1_6);
            let align = (g == 4).then_some(second_align4);
            for i in 0..N {
                m2[g][i] = next_group_from(
                    msg1,
                    align,
                    [m2[g - 4][i], m2[g - 3][i], m2[g - 2][i], m2[g - 1][i]],
                );
            }
            let mg = m2[g];
            four_rounds(&mut abef, &mut cdgh, &mg, 4 * g);
        });
        // Group 15: only rounds 60 and 61 are needed.
        let mut wk = [zero; N];
        for i in 0..N {
            let m15 = next_group_from(None, None, [m2[11][i], m2[12][i], m2[13][i], m2[14][i]]);
            wk[i] = _mm_add_epi32(m15, kv(60));
        }
        two_rounds(&mut abef, &mut cdgh, &wk);
        for (i, s) in abef.iter().enumerate() {
            // lane 0 of ABEF after round 61 is f, which is h after round 63.
            let h7 = (_mm_cvtsi128_si32(*s) as u32).wrapping_add(SHA256_IV[7]);
            let nonce = base + i as u64;
            if h7.swap_bytes() <= top && nonce < end {
                found.push(nonce as u32);
            }
        }
        base += N as u64;
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
