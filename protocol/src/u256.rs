//! A minimal unsigned 256-bit integer for target and work arithmetic.
//!
//! Consensus math needs a handful of exact operations on 256-bit numbers (shifts, compare,
//! division) and nothing else, so a small private type beats a general bignum dependency.
//! Limbs are little-endian: `self.0[0]` holds the least significant 64 bits.

use std::cmp::Ordering;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub(crate) struct U256(pub(crate) [u64; 4]);

impl U256 {
    pub(crate) const ZERO: U256 = U256([0; 4]);
    pub(crate) const MAX: U256 = U256([u64::MAX; 4]);

    pub(crate) fn from_u64(v: u64) -> U256 {
        U256([v, 0, 0, 0])
    }

    pub(crate) fn from_be_bytes(b: [u8; 32]) -> U256 {
        let mut limbs = [0u64; 4];
        for (i, limb) in limbs.iter_mut().enumerate() {
            let start = 32 - 8 * (i + 1);
            *limb = u64::from_be_bytes(b[start..start + 8].try_into().expect("8 bytes"));
        }
        U256(limbs)
    }

    pub(crate) fn to_be_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().enumerate() {
            let start = 32 - 8 * (i + 1);
            out[start..start + 8].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    pub(crate) fn is_zero(self) -> bool {
        self.0 == [0; 4]
    }

    /// Number of significant bits (0 for zero).
    pub(crate) fn bits(self) -> u32 {
        for i in (0..4).rev() {
            if self.0[i] != 0 {
                return 64 * i as u32 + (64 - self.0[i].leading_zeros());
            }
        }
        0
    }

    /// Shift left; bits shifted past 256 are lost (callers check `bits()` first).
    pub(crate) fn shl(self, shift: u32) -> U256 {
        if shift >= 256 {
            return U256::ZERO;
        }
        let words = (shift / 64) as usize;
        let bits = shift % 64;
        let mut out = [0u64; 4];
        for i in (words..4).rev() {
            let mut v = self.0[i - words] << bits;
            if bits > 0 && i > words {
                v |= self.0[i - words - 1] >> (64 - bits);
            }
            out[i] = v;
        }
        U256(out)
    }

    pub(crate) fn shr(self, shift: u32) -> U256 {
        if shift >= 256 {
            return U256::ZERO;
        }
        let words = (shift / 64) as usize;
        let bits = shift % 64;
        let mut out = [0u64; 4];
        for (i, slot) in out.iter_mut().enumerate().take(4 - words) {
            let mut v = self.0[i + words] >> bits;
            if bits > 0 && i + words + 1 < 4 {
                v |= self.0[i + words + 1] << (64 - bits);
            }
            *slot = v;
        }
        U256(out)
    }

    pub(crate) fn low_u64(self) -> u64 {
        self.0[0]
    }

    fn overflowing_add(self, other: U256) -> (U256, bool) {
        let mut out = [0u64; 4];
        let mut carry = false;
        for (i, slot) in out.iter_mut().enumerate() {
            let (s1, c1) = self.0[i].overflowing_add(other.0[i]);
            let (s2, c2) = s1.overflowing_add(carry as u64);
            *slot = s2;
            carry = c1 || c2;
        }
        (U256(out), carry)
    }

    pub(crate) fn saturating_add(self, other: U256) -> U256 {
        match self.overflowing_add(other) {
            (v, false) => v,
            (_, true) => U256::MAX,
        }
    }

    fn wrapping_sub(self, other: U256) -> U256 {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for (i, slot) in out.iter_mut().enumerate() {
            let (d1, b1) = self.0[i].overflowing_sub(other.0[i]);
            let (d2, b2) = d1.overflowing_sub(borrow as u64);
            *slot = d2;
            borrow = b1 || b2;
        }
        U256(out)
    }

    pub(crate) fn not(self) -> U256 {
        U256([!self.0[0], !self.0[1], !self.0[2], !self.0[3]])
    }

    /// Quotient of `self / divisor` by shift-and-subtract; `None` when dividing by zero.
    /// Off the hot path: used for targets and work, never per hash.
    pub(crate) fn checked_div(self, divisor: U256) -> Option<U256> {
        if divisor.is_zero() {
            return None;
        }
        if self < divisor {
            return Some(U256::ZERO);
        }
        let shift = self.bits() - divisor.bits();
        let mut d = divisor.shl(shift);
        let mut rem = self;
        let mut quot = U256::ZERO;
        for i in (0..=shift).rev() {
            if rem >= d {
                rem = rem.wrapping_sub(d);
                quot.0[(i / 64) as usize] |= 1 << (i % 64);
            }
            d = d.shr(1);
        }
        Some(quot)
    }

    /// `self * m`, or `None` on overflow.
    pub(crate) fn checked_mul_u64(self, m: u64) -> Option<U256> {
        let mut out = [0u64; 4];
        let mut carry: u128 = 0;
        for (i, slot) in out.iter_mut().enumerate() {
            let v = self.0[i] as u128 * m as u128 + carry;
            *slot = v as u64;
            carry = v >> 64;
        }
        (carry == 0).then_some(U256(out))
    }

    /// Approximate value as f64 (exact to 53 significant bits).
    pub(crate) fn to_f64(self) -> f64 {
        let mut acc = 0.0f64;
        for i in (0..4).rev() {
            acc = acc * 18446744073709551616.0 + self.0[i] as f64;
        }
        acc
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        for i in (0..4).rev() {
            match self.0[i].cmp(&other.0[i]) {
                Ordering::Equal => continue,
                o => return o,
            }
        }
        Ordering::Equal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_cross_limbs() {
        let one = U256::from_u64(1);
        assert_eq!(one.shl(200).shr(200), one);
        assert_eq!(one.shl(64).0, [0, 1, 0, 0]);
        assert_eq!(one.shl(255).bits(), 256);
        assert_eq!(U256::MAX.shr(255), one);
    }

    #[test]
    fn division_matches_u128() {
        let a: u128 = 0x1234_5678_9abc_def0_1122_3344_5566_7788;
        let b: u128 = 0x9_8765_4321;
        let ua = U256([a as u64, (a >> 64) as u64, 0, 0]);
        let ub = U256([b as u64, (b >> 64) as u64, 0, 0]);
        let q = ua.checked_div(ub).unwrap();
        let expect = a / b;
        assert_eq!(q.0, [expect as u64, (expect >> 64) as u64, 0, 0]);
        assert!(ua.checked_div(U256::ZERO).is_none());
    }

    #[test]
    fn be_bytes_round_trip() {
        let mut b = [0u8; 32];
        for (i, x) in b.iter_mut().enumerate() {
            *x = i as u8;
        }
        assert_eq!(U256::from_be_bytes(b).to_be_bytes(), b);
    }
}
