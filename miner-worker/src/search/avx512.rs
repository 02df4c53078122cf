//! AVX-512: sixteen nonces per 512-bit vector, with `vprord` rotates and `vpternlogd` for Ch,
//! Maj and the three-way xors of the sigma functions; `Avx512x2` interleaves two vectors.

use std::arch::x86_64::*;

use super::avx2::Pair;
use super::lanes::Lanes;
use super::{search_lanes, Kernel, Precomputed};

pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl")
        && std::arch::is_x86_feature_detected!("avx512bw")
}

#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct V16(__m512i);

impl Lanes for V16 {
    const LANES: usize = 16;
    #[inline(always)]
    fn splat(v: u32) -> Self {
        unsafe { V16(_mm512_set1_epi32(v as i32)) }
    }
    #[inline(always)]
    fn counter(base: u32) -> Self {
        unsafe {
            V16(_mm512_add_epi32(
                _mm512_set1_epi32(base as i32),
                _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            ))
        }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        unsafe { V16(_mm512_add_epi32(self.0, o.0)) }
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        unsafe { V16(_mm512_xor_si512(self.0, o.0)) }
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        unsafe { V16(_mm512_and_si512(self.0, o.0)) }
    }
    #[inline(always)]
    fn or(self, o: Self) -> Self {
        unsafe { V16(_mm512_or_si512(self.0, o.0)) }
    }
    #[inline(always)]
    fn rotr<const N: u32>(self) -> Self {
        // A rotate by a splat constant compiles to vprord with an immediate.
        unsafe { V16(_mm512_rorv_epi32(self.0, _mm512_set1_epi32(N as i32))) }
    }
    #[inline(always)]
    fn shr<const N: u32>(self) -> Self {
        unsafe { V16(_mm512_srlv_epi32(self.0, _mm512_set1_epi32(N as i32))) }
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        unsafe {
            let m = _mm512_set_epi8(
                12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11,
                4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12,
                13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3,
            );
            V16(_mm512_shuffle_epi8(self.0, m))
        }
    }
    #[inline(always)]
    fn le_mask(self, top: u32) -> u32 {
        unsafe { _mm512_cmple_epu32_mask(self.bswap().0, _mm512_set1_epi32(top as i32)) as u32 }
    }
    #[inline(always)]
    fn xor3(a: Self, b: Self, c: Self) -> Self {
        unsafe { V16(_mm512_ternarylogic_epi32::<0x96>(a.0, b.0, c.0)) }
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        unsafe { V16(_mm512_ternarylogic_epi32::<0xca>(e.0, f.0, g.0)) }
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        unsafe { V16(_mm512_ternarylogic_epi32::<0xe8>(a.0, b.0, c.0)) }
    }
}

#[target_feature(enable = "avx512f,avx512vl,avx512bw")]
unsafe fn search_v16(pre: &Precomputed, start: u64, end: u64, top: u32, found: &mut Vec<u32>) {
    search_lanes::<V16>(pre, start, end, top, found)
}

#[target_feature(enable = "avx512f,avx512vl,avx512bw")]
unsafe fn search_v16x2(pre: &Precomputed, start: u64, end: u64, top: u32, found: &mut Vec<u32>) {
    search_lanes::<Pair<V16>>(pre, start, end, top, found)
}

pub struct Avx512;
pub struct Avx512x2;

impl Kernel for Avx512 {
    fn name(&self) -> &'static str {
        "avx512"
    }
    fn lanes(&self) -> usize {
        16
    }
    fn search(&self, pre: &Precomputed, start: u64, end: u64, top: u32, found: &mut Vec<u32>) {
        assert!(available(), "avx512 kernel called on a CPU without AVX-512");
        unsafe { search_v16(pre, start, end, top, found) }
    }
}

impl Kernel for Avx512x2 {
    fn name(&self) -> &'static str {
        "avx512x2"
    }
    fn lanes(&self) -> usize {
        32
    }
    fn search(&self, pre: &Precomputed, start: u64, end: u64, top: u32, found: &mut Vec<u32>) {
        assert!(available(), "avx512 kernel called on a CPU without AVX-512");
        unsafe { search_v16x2(pre, start, end, top, found) }
    }
}
