//! SHA-256d over a generic "lane" type, so one carefully hoisted algorithm serves the scalar,
//! AVX2 (8 lanes) and AVX-512 (16 lanes) kernels.
//!
//! Per work unit (job, extranonce2, ntime, version) the caller precomputes a [`Precomputed`]:
//! the midstate of the header's first 64 bytes, the state after the first three rounds of the
//! second block (their message words are constant), and `K + W` for rounds 4..15 (padding
//! words). Per nonce only rounds 3..63 of the first hash and rounds 0..60 of the second remain:
//! the final hash word H7 equals `IV7 + e` after round 60, so rounds 61..63 and their schedule
//! are never computed. The second hash's padding words and initial state are constants the
//! compiler folds. Functions are `#[inline(always)]` so that they compile inside each kernel's
//! `#[target_feature]` function with that kernel's instructions.

use protocol::sha256d::SHA256_IV;

pub const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// Message words 4..15 of the header's second block: padding for an 80-byte message.
pub const BLOCK2_PAD: [u32; 12] = [0x8000_0000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 640];

/// The operations a SHA-256 lane type needs. Defaults build the sigma functions from rotates
/// and xors; a type with better instructions (AVX-512's `vprord`, `vpternlogd`) overrides them.
pub trait Lanes: Copy {
    const LANES: usize;
    fn splat(v: u32) -> Self;
    /// Lanes `base, base + 1, ...` (wrapping).
    fn counter(base: u32) -> Self;
    fn add(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn and(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    fn rotr<const N: u32>(self) -> Self;
    fn shr<const N: u32>(self) -> Self;
    fn bswap(self) -> Self;
    /// Bit i set when lane i, byte-swapped, is <= `top` (the early reject on the hash's top word).
    fn le_mask(self, top: u32) -> u32;

    #[inline(always)]
    fn xor3(a: Self, b: Self, c: Self) -> Self {
        a.xor(b).xor(c)
    }
    #[inline(always)]
    fn ch(e: Self, f: Self, g: Self) -> Self {
        // (e & f) ^ (!e & g) == g ^ (e & (f ^ g))
        g.xor(e.and(f.xor(g)))
    }
    #[inline(always)]
    fn maj(a: Self, b: Self, c: Self) -> Self {
        // (a & b) | (c & (a | b))
        a.and(b).or(c.and(a.or(b)))
    }
    #[inline(always)]
    fn big_sigma0(a: Self) -> Self {
        Self::xor3(a.rotr::<2>(), a.rotr::<13>(), a.rotr::<22>())
    }
    #[inline(always)]
    fn big_sigma1(e: Self) -> Self {
        Self::xor3(e.rotr::<6>(), e.rotr::<11>(), e.rotr::<25>())
    }
    #[inline(always)]
    fn small_sigma0(w: Self) -> Self {
        Self::xor3(w.rotr::<7>(), w.rotr::<18>(), w.shr::<3>())
    }
    #[inline(always)]
    fn small_sigma1(w: Self) -> Self {
        Self::xor3(w.rotr::<17>(), w.rotr::<19>(), w.shr::<10>())
    }
}

/// What a work unit contributes to every nonce's hash.
#[derive(Debug, Clone, Copy)]
pub struct Precomputed {
    pub midstate: [u32; 8],
    /// State (a..h) after rounds 0..2 of the second block.
    pub state3: [u32; 8],
    /// Message words 0..2 of the second block (merkle root tail, ntime, nbits).
    pub tail: [u32; 3],
    /// K[t] + W[t] for rounds 4..15.
    pub kw4: [u32; 12],
}

#[inline(always)]
fn scalar_round(s: &mut [u32; 8], kw: u32) {
    let [a, b, c, d, e, f, g, h] = *s;
    let t1 = h
        .wrapping_add(e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25))
        .wrapping_add((e & f) ^ (!e & g))
        .wrapping_add(kw);
    let t2 = (a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22))
        .wrapping_add((a & b) ^ (a & c) ^ (b & c));
    *s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
}

impl Precomputed {
    /// From the midstate and the header's bytes 64..76 read as big-endian words.
    pub fn new(midstate: [u32; 8], tail: [u32; 3]) -> Self {
        let mut state3 = midstate;
        for (t, w) in tail.iter().enumerate() {
            scalar_round(&mut state3, K[t].wrapping_add(*w));
        }
        let mut kw4 = [0u32; 12];
        for (i, kw) in kw4.iter_mut().enumerate() {
            *kw = K[4 + i].wrapping_add(BLOCK2_PAD[i]);
        }
        Precomputed {
            midstate,
            state3,
            tail,
            kw4,
        }
    }

    /// From an 80-byte header (its nonce is ignored).
    pub fn from_header(header: &[u8; 80]) -> Self {
        let midstate = protocol::sha256d::midstate(header);
        let word =
            |i: usize| u32::from_be_bytes(header[64 + 4 * i..68 + 4 * i].try_into().unwrap());
        Precomputed::new(midstate, [word(0), word(1), word(2)])
    }
}

/// One round with role rotation by index: round `T` finds `a` in slot `(8 - T % 8) % 8`, so no
/// values move between registers, and the new `a` and `e` land in the slots of the old `h` and `d`.
#[inline(always)]
fn round<L: Lanes, const T: usize>(s: &mut [L; 8], kw: L) {
    let r = T % 8;
    let (ia, ib, ic, id) = ((8 - r) % 8, (9 - r) % 8, (10 - r) % 8, (11 - r) % 8);
    let (ie, iff, ig, ih) = ((12 - r) % 8, (13 - r) % 8, (14 - r) % 8, (15 - r) % 8);
    let t1 = s[ih]
        .add(L::big_sigma1(s[ie]))
        .add(L::ch(s[ie], s[iff], s[ig]))
        .add(kw);
    let t2 = L::big_sigma0(s[ia]).add(L::maj(s[ia], s[ib], s[ic]));
    s[id] = s[id].add(t1);
    s[ih] = t1.add(t2);
}

/// Extend the message schedule to W[T] (T >= 16) in a 16-word ring.
#[inline(always)]
fn schedule<L: Lanes, const T: usize>(w: &mut [L; 16]) -> L {
    let v = L::small_sigma1(w[(T - 2) % 16])
        .add(w[(T - 7) % 16])
        .add(L::small_sigma0(w[(T - 15) % 16]))
        .add(w[T % 16]);
    w[T % 16] = v;
    v
}

macro_rules! rounds_with_message {
    ($L:ty, $s:ident, $w:ident, $hook:ident, $hash:literal; $($t:literal)*) => {
        $(
            round::<$L, $t>(&mut $s, <$L>::splat(K[$t]).add($w[$t]));
            $hook.after_round(lane_round($hash, $t));
        )*
    };
}

macro_rules! rounds_with_schedule {
    ($L:ty, $s:ident, $w:ident, $hook:ident, $hash:literal; $($t:literal)*) => {
        $( {
            let wt = schedule::<$L, $t>(&mut $w);
            round::<$L, $t>(&mut $s, <$L>::splat(K[$t]).add(wt));
            $hook.after_round(lane_round($hash, $t));
        } )*
    };
}

macro_rules! rounds_with_constant {
    ($L:ty, $s:ident, $kw:expr, $hook:ident; $($t:literal)*) => {
        $(
            round::<$L, $t>(&mut $s, <$L>::splat($kw[$t - 4]));
            $hook.after_round(lane_round(0, $t));
        )*
    };
}

/// Rounds a lane kernel computes per nonce: 3..63 of the first hash, 0..60 of the second.
pub const LANE_ROUNDS: usize = 122;

/// Position of round `t` of hash `hash` (0 or 1) among the [`LANE_ROUNDS`].
#[inline(always)]
const fn lane_round(hash: usize, t: usize) -> usize {
    hash * 61 + t - 3 * (1 - hash)
}

/// Other work woven between a lane kernel's rounds, so that one thread keeps two kinds of
/// execution unit busy (the hybrid kernel runs SHA-NI streams between AVX2 rounds).
/// `after_round(i)` runs after the `i`-th of the [`LANE_ROUNDS`] rounds, `i` a constant at
/// every call site, so an inlined implementation folds to straight-line code.
pub trait Interleave {
    fn after_round(&mut self, i: usize);
}

/// Nothing woven in: the plain lane kernels.
impl Interleave for () {
    #[inline(always)]
    fn after_round(&mut self, _: usize) {}
}

/// The final hash word H7 (big-endian word order, before byte swap) for the nonces in `nonce`
/// (given as they sit in the header, i.e. the little-endian value).
#[inline(always)]
pub fn sha256d_h7<L: Lanes>(pre: &Precomputed, nonce: L) -> L {
    sha256d_h7_woven(pre, nonce, &mut ())
}

/// [`sha256d_h7`] with `hook` run after every round.
#[inline(always)]
pub fn sha256d_h7_woven<L: Lanes, H: Interleave>(pre: &Precomputed, nonce: L, hook: &mut H) -> L {
    // First hash, second block: rounds 3..63 from the precomputed state.
    let w3 = nonce.bswap();
    // Round 3 expects `a` in slot 5 (roles rotate by one slot per round), so the state after
    // rounds 0..2 is laid out as [d, e, f, g, h, a, b, c].
    let st = pre.state3;
    let mut s = [
        L::splat(st[3]),
        L::splat(st[4]),
        L::splat(st[5]),
        L::splat(st[6]),
        L::splat(st[7]),
        L::splat(st[0]),
        L::splat(st[1]),
        L::splat(st[2]),
    ];
    let mut w = [
        L::splat(pre.tail[0]),
        L::splat(pre.tail[1]),
        L::splat(pre.tail[2]),
        w3,
        L::splat(BLOCK2_PAD[0]),
        L::splat(BLOCK2_PAD[1]),
        L::splat(BLOCK2_PAD[2]),
        L::splat(BLOCK2_PAD[3]),
        L::splat(BLOCK2_PAD[4]),
        L::splat(BLOCK2_PAD[5]),
        L::splat(BLOCK2_PAD[6]),
        L::splat(BLOCK2_PAD[7]),
        L::splat(BLOCK2_PAD[8]),
        L::splat(BLOCK2_PAD[9]),
        L::splat(BLOCK2_PAD[10]),
        L::splat(BLOCK2_PAD[11]),
    ];
    round::<L, 3>(&mut s, L::splat(K[3]).add(w3));
    hook.after_round(lane_round(0, 3));
    rounds_with_constant!(L, s, pre.kw4, hook; 4 5 6 7 8 9 10 11 12 13 14 15);
    rounds_with_schedule!(L, s, w, hook, 0; 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
    // After 64 rounds roles are back in place: slot i holds state word i.
    let h1 = [
        s[0].add(L::splat(pre.midstate[0])),
        s[1].add(L::splat(pre.midstate[1])),
        s[2].add(L::splat(pre.midstate[2])),
        s[3].add(L::splat(pre.midstate[3])),
        s[4].add(L::splat(pre.midstate[4])),
        s[5].add(L::splat(pre.midstate[5])),
        s[6].add(L::splat(pre.midstate[6])),
        s[7].add(L::splat(pre.midstate[7])),
    ];

    // Second hash: one block of the 32-byte digest plus constant padding, from the IV.
    let mut s = [
        L::splat(SHA256_IV[0]),
        L::splat(SHA256_IV[1]),
        L::splat(SHA256_IV[2]),
        L::splat(SHA256_IV[3]),
        L::splat(SHA256_IV[4]),
        L::splat(SHA256_IV[5]),
        L::splat(SHA256_IV[6]),
        L::splat(SHA256_IV[7]),
    ];
    let mut w = [
        h1[0],
        h1[1],
        h1[2],
        h1[3],
        h1[4],
        h1[5],
        h1[6],
        h1[7],
        L::splat(0x8000_0000),
        L::splat(0),
        L::splat(0),
        L::splat(0),
        L::splat(0),
        L::splat(0),
        L::splat(0),
        L::splat(256),
    ];
    rounds_with_message!(L, s, w, hook, 1; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    rounds_with_schedule!(L, s, w, hook, 1; 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
        32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60);
    // h after round 63 is e after round 60, which round 60 wrote into slot 7.
    s[7].add(L::splat(SHA256_IV[7]))
}

impl Lanes for u32 {
    const LANES: usize = 1;
    #[inline(always)]
    fn splat(v: u32) -> Self {
        v
    }
    #[inline(always)]
    fn counter(base: u32) -> Self {
        base
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        self ^ o
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        self & o
    }
    #[inline(always)]
    fn or(self, o: Self) -> Self {
        self | o
    }
    #[inline(always)]
    fn rotr<const N: u32>(self) -> Self {
        self.rotate_right(N)
    }
    #[inline(always)]
    fn shr<const N: u32>(self) -> Self {
        self >> N
    }
    #[inline(always)]
    fn bswap(self) -> Self {
        self.swap_bytes()
    }
    #[inline(always)]
    fn le_mask(self, top: u32) -> u32 {
        (self.swap_bytes() <= top) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_core_matches_reference_sha256d() {
        let mut header = [0u8; 80];
        for (i, b) in header.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        let pre = Precomputed::from_header(&header);
        for nonce in [0u32, 1, 0xdead_beef, u32::MAX] {
            header[76..].copy_from_slice(&nonce.to_le_bytes());
            let reference = protocol::sha256d::sha256d(&header);
            let h7 = sha256d_h7::<u32>(&pre, nonce);
            assert_eq!(h7.to_be_bytes(), reference[28..32], "nonce {nonce:#x}");
        }
    }
}
