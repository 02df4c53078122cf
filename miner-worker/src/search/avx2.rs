//! AVX2: eight nonces per 256-bit vector, the hoisted core with vector rotates built from
//! shifts; `Avx2x2` interleaves two vectors to hide latency.

use std::arch::x86_64::*;

use super::lanes::Lanes;
use super::{search_lanes, Kernel, Precomputed};

pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct V8(__m256i);

impl Lanes for V8 {
    const LANES: usize = 8;
    #[inline(always)]
    fn splat(v: u32) -> Self {
        unsafe { V8(_mm256_set1_epi32(v as i32)) }
    }
    #[inline(always)]
    fn counter(base: u32) -> Self {
        unsafe {
            V8(_mm256_add_epi32(
                _mm256_set1_epi32(base as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            ))
        }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { V8(_mm256_add_epi32(self.0, o.0)) }
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        unsafe { V8(_mm256_xor_si256(self.0, o.0)) }
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        unsafe { V8(_mm256_and_si256(self.0, o.0)) }
    }
    #[inline(always)]
    fn or(self, o: Self) -> Self {
        unsafe { V8(_mm256_or_si256(self.0, o.0)) }
    }
    #[inline(always)]
    fn rotr<const N: u32>(self) -> Self {
        unsafe {
            V8(_mm256_or_si256(
                _mm256_srlv_epi32(self.0, _mm256_set1_epi32(N as i32)),
                _mm256_sllv_epi32(self.0, _mm256_set1_epi32(32 - N as i32)),
            ))
        }
    }
    #[inline(always)]
    fn shr<const N: u32>(self) -> Self {
        unsafe { V8(_mm256_srlv_epi32(self.0, _mm256_set1_epi32(N as i32))) }
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        unsafe {
            let m = _mm256_setr_epi8(
                3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 3, 2, 1, 0, 7, 6, 5, 4, 11,
                10, 9, 8, 15, 14, 13, 12,
            );
            V8(_mm256_shuffle_epi8(self.0, m))
        }
    }
    #[inline(always)]
    fn le_mask(self, top: u32) -> u32 {
        unsafe {
            let x = self.bswap().0;
            let t = _mm256_set1_epi32(top as i32);
            let le = _mm256_cmpeq_epi32(_mm256_max_epu32(x, t), t);
            _mm256_movemask_ps(_mm256_castsi256_ps(le)) as u32
        }
    }
}

/// Two independent vectors per step.
#[derive(Clone, Copy)]
pub struct Pair<L>(L, L);

impl<L: Lanes> Lanes for Pair<L> {
    const LANES: usize = 2 * L::LANES;
    #[inline(always)]
    fn splat(v: u32) -> Self {
        Pair(L::splat(v), L::splat(v))
    }
    #[inline(always)]
    fn counter(base: u32) -> Self {
        Pair(
            L::counter(base),
            L::counter(base.wrapping_add(L::LANES as u32)),
        )
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Pair(self.0.add(o.0), self.1.add(o.1))
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        Pair(self.0.xor(o.0), self.1.xor(o.1))
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        Pair(self.0.and(o.0), self.1.and(o.1))
    }
    #[inline(always)]
    fn or(self, o: Self) -> Self {
        Pair(self.0.or(o.0), self.1.or(o.1))
    }
    #[inline(always)]
    fn rotr<const N: u32>(self) -> Self {
        Pair(self.0.rotr::<N>(), self.1.rotr::<N>())
    }
    #[inline(always)]
    fn shr<const N: u32>(self) -> Self {
        Pair(self.0.shr::<N>(), self.1.shr::<N>())
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        Pair(self.0.bswap(), self.1.bswap())
    }
    #[inline(always)]
    fn le_mask(self, top: u32) -> u32 {
        self.0.le_mask(top) | (self.1.le_mask(top) << L::LANES)
    }
    #[inline(always)]
    fn xor3(a: Self, b: Self, c: Self) -> Self {
        Pair(L::xor3(a.0, b.0, c.0), L::xor3(a.1, b.1, c.1))
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        Pair(L::ch(e.0, f.0, g.0), L::ch(e.1, f.1, g.1))
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        Pair(L::maj(a.0, b.0, c.0), L::maj(a.1, b.1, c.1))
    }
    #[inline(always)]
    fn big_sigma0(a: Self) -> Self {
        Pair(L::big_sigma0(a.0), L::big_sigma0(a.1))
    }
    #[inline(always)]
    fn big_sigma1(e: Self) -> Self {
        Pair(L::big_sigma1(e.0), L::big_sigma1(e.1))
    }
    #[inline(always)]
    fn small_sigma0(w: Self) -> Self {
        Pair(L::small_sigma0(w.0), L::small_sigma0(w.1))
    }
    #[inline(always)]
    fn small_sigma1(w: Self) -> Self {
        Pair(L::small_sigma1(w.0), L::small_sigma1(w.1))
    }
}

#[target_feature(enable = "avx2")]
unsafe fn search_v8(pre: &Precomputed, start: u64, end: u64, top: u32, found: &mut Vec<u32>) {
    search_lanes::<V8>(pre, start, end, top, found)
}

#[target_feature(enable = "avx2")]
unsafe fn search_v8x2(pre: &Precomputed, start: u64, end: u64, top: u32, found: &mut Vec<u32>) {
    search_lanes::<Pair<V8>>(pre, start, end, top, found)
}

pub struct Avx2;
pub struct Avx2x2;

impl Kernel for Avx2 {
    fn name(&self) -> &'static str {
        "avx2"
    }
    fn lanes(&self) -> usize {
        8
    }
    fn search(&self, pre: &Precomputed, start: u64, end: u64, top: u32, found: &mut Vec<u32>) {
        assert!(available(), "avx2 kernel called on a CPU without AVX2");
        unsafe { search_v8(pre, start, end, top, found) }
    }
}

impl Kernel for Avx2x2 {
    fn name(&self) -> &'static str {
        "avx2x2"
    }
    fn lanes(&self) -> usize {
        16
    }
    fn search(&self, pre: &Precomputed, start: u64, end: u64, top: u32, found: &mut Vec<u32>) {
        assert!(available(), "avx2 kernel called on a CPU without AVX2");
        unsafe { search_v8x2(pre, start, end, top, found) }
    }
}
