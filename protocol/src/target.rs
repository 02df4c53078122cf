//! Proof-of-work numbers as newtypes: compact nBits, 256-bit targets, pool difficulty, work
//! and hashrate.
//!
//! Modelled on rust-bitcoin's `pow.rs`: each quantity has its own type so that a difficulty is
//! never passed where a target is expected, and every conversion says its byte order. Compact
//! decoding follows Bitcoin Core's `arith_uint256::SetCompact`, including its negative and
//! overflow flags, which rust-bitcoin silently maps to zero.

use std::fmt;
use std::ops::Add;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::BlockHash;
use serde::{Deserialize, Serialize};

use crate::u256::U256;

/// `nBits`: a 256-bit target in Bitcoin's 32-bit floating "compact" encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CompactTarget(u32);

/// Why a compact encoding names no usable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CompactTargetError {
    #[error("compact target {0:#010x} has its sign bit set (negative)")]
    Negative(u32),
    #[error("compact target {0:#010x} overflows 256 bits")]
    Overflow(u32),
    #[error("compact target {0:#010x} is zero")]
    Zero(u32),
}

impl CompactTarget {
    pub const fn from_consensus(bits: u32) -> Self {
        CompactTarget(bits)
    }

    pub const fn to_consensus(self) -> u32 {
        self.0
    }

    /// Decode as Bitcoin Core does, refusing negative, overflowing and zero targets.
    pub fn to_target(self) -> Result<Target, CompactTargetError> {
        let compact = self.0;
        let size = compact >> 24;
        let mut word = compact & 0x007f_ffff;
        let value = if size <= 3 {
            word >>= 8 * (3 - size);
            U256::from_u64(word as u64)
        } else {
            U256::from_u64(word as u64).shl(8 * (size - 3))
        };
        if word != 0 && compact & 0x0080_0000 != 0 {
            return Err(CompactTargetError::Negative(compact));
        }
        if word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32)) {
            return Err(CompactTargetError::Overflow(compact));
        }
        if value.is_zero() {
            return Err(CompactTargetError::Zero(compact));
        }
        Ok(Target(value))
    }
}

impl fmt::Debug for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompactTarget({:#010x})", self.0)
    }
}

impl fmt::Display for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl From<CompactTarget> for bitcoin::CompactTarget {
    fn from(c: CompactTarget) -> Self {
        bitcoin::CompactTarget::from_consensus(c.0)
    }
}

impl From<bitcoin::CompactTarget> for CompactTarget {
    fn from(c: bitcoin::CompactTarget) -> Self {
        CompactTarget(c.to_consensus())
    }
}

/// A 256-bit unsigned target: a hash meets it when the hash, read as a little-endian number,
/// is less than or equal to it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target(U256);

/// The difficulty-1 target of Bitcoin pools: `0x00000000FFFF0000...0000` (nBits 0x1d00ffff).
const DIFF1: U256 = U256([0, 0, 0, 0x0000_0000_ffff_0000]);

impl Target {
    /// The largest possible target; every hash meets it.
    pub const MAX: Target = Target(U256::MAX);
    /// Pool difficulty 1.
    pub const DIFFICULTY_1: Target = Target(DIFF1);

    /// From the 32 bytes of a big-endian number (as targets are usually printed).
    pub fn from_be_bytes(bytes: [u8; 32]) -> Self {
        Target(U256::from_be_bytes(bytes))
    }

    pub fn to_be_bytes(self) -> [u8; 32] {
        self.0.to_be_bytes()
    }

    /// From the 32 bytes of a little-endian number (a hash's internal byte order).
    pub fn from_le_bytes(mut bytes: [u8; 32]) -> Self {
        bytes.reverse();
        Target::from_be_bytes(bytes)
    }

    pub fn to_le_bytes(self) -> [u8; 32] {
        let mut b = self.to_be_bytes();
        b.reverse();
        b
    }

    /// The compact encoding, as Bitcoin Core's `GetCompact` rounds it (towards zero).
    pub fn to_compact(self) -> CompactTarget {
        let mut size = self.0.bits().div_ceil(8);
        let mut compact = if size <= 3 {
            (self.0.low_u64() << (8 * (3 - size))) as u32
        } else {
            self.0.shr(8 * (size - 3)).low_u64() as u32
        };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        CompactTarget(compact | (size << 24))
    }

    /// The share target for a pool difficulty: `DIFFICULTY_1 / difficulty`, exact for the
    /// 53-bit mantissa of the float, saturating at [`Target::MAX`] for tiny difficulties.
    pub fn from_difficulty(difficulty: Difficulty) -> Self {
        let d = difficulty.0;
        // Decompose d = mantissa * 2^exp with an integer mantissa (d is finite and > 0).
        let bits = d.to_bits();
        let raw_exp = ((bits >> 52) & 0x7ff) as i32;
        let frac = bits & ((1u64 << 52) - 1);
        let (mantissa, exp) = if raw_exp == 0 {
            (frac, -1074)
        } else {
            (frac | (1u64 << 52), raw_exp - 1075)
        };
        // target = 0xFFFF * 2^(208 - exp) / mantissa, by binary long division over the
        // dividend's bits; the remainder stays below the 53-bit mantissa.
        let zeros = 208 - exp as i64;
        if zeros < 0 {
            return Target(U256::from_u64(1));
        }
        let mut quotient = U256::ZERO;
        let mut rem: u64 = 0;
        let dividend_bits = 16 + zeros as u64;
        for i in 0..dividend_bits {
            let bit = u64::from(i < 16); // 0xFFFF then `zeros` zero bits
            rem = (rem << 1) | bit;
            if quotient.bits() == 256 {
                return Target::MAX;
            }
            quotient = quotient.shl(1);
            if rem >= mantissa {
                rem -= mantissa;
                quotient.0[0] |= 1;
            }
        }
        if quotient.is_zero() {
            Target(U256::from_u64(1))
        } else {
            Target(quotient)
        }
    }

    /// `self * numerator / denominator`, saturating at [`Target::MAX`]: the step of a
    /// difficulty retarget (`old * actual_timespan / target_timespan`).
    pub fn scaled(self, numerator: u64, denominator: u64) -> Target {
        assert!(denominator > 0, "denominator must be positive");
        match self.0.checked_mul_u64(numerator) {
            Some(product) => Target(
                product
                    .checked_div(U256::from_u64(denominator))
                    .expect("non-zero denominator"),
            ),
            // Divide first when the product would not fit; loses only low bits.
            None => match self
                .0
                .checked_div(U256::from_u64(denominator))
                .expect("non-zero denominator")
                .checked_mul_u64(numerator)
            {
                Some(v) => Target(v),
                None => Target::MAX,
            },
        }
    }

    /// The pool difficulty this target stands for (`DIFFICULTY_1 / self`).
    pub fn difficulty(self) -> Difficulty {
        Difficulty(DIFF1.to_f64() / self.0.to_f64().max(1.0))
    }

    /// Whether `hash` meets this target (`hash <= target`, the hash read little-endian).
    #[inline]
    pub fn is_met_by(&self, hash: &BlockHash) -> bool {
        Target::from_le_bytes(hash.to_byte_array()) <= *self
    }

    /// Expected number of hashes to find a hash meeting this target, as Bitcoin Core's
    /// `GetBlockProof` computes it: `2^256 / (target + 1)`.
    pub fn to_work(self) -> Work {
        // (~target / (target + 1)) + 1 avoids needing 2^256 itself.
        // For the maximum target, target + 1 saturates and the quotient is 0: work 1.
        let plus_one = self.0.saturating_add(U256::from_u64(1));
        let q = self
            .0
            .not()
            .checked_div(plus_one)
            .expect("target + 1 is non-zero");
        Work(q.saturating_add(U256::from_u64(1)))
    }

    /// The pool difficulty a hash achieves: `DIFFICULTY_1 / hash`.
    pub fn achieved_difficulty(hash: &BlockHash) -> Difficulty {
        Target::from_le_bytes(hash.to_byte_array()).difficulty()
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", hex::encode(self.to_be_bytes()))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_be_bytes()))
    }
}

/// Pool (share) difficulty: how many times harder than difficulty 1 a share target is.
/// Fractional values are allowed; zero, negative and non-finite values are not.
#[derive(Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Difficulty(f64);

/// A difficulty that is zero, negative, NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("difficulty must be a finite number greater than zero, got {0}")]
pub struct InvalidDifficulty(pub f64);

impl Difficulty {
    pub const ONE: Difficulty = Difficulty(1.0);

    pub fn new(value: f64) -> Result<Self, InvalidDifficulty> {
        if value.is_finite() && value > 0.0 {
            Ok(Difficulty(value))
        } else {
            Err(InvalidDifficulty(value))
        }
    }

    pub fn as_f64(self) -> f64 {
        self.0
    }

    pub fn to_target(self) -> Target {
        Target::from_difficulty(self)
    }
}

impl<'de> Deserialize<'de> for Difficulty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        Difficulty::new(v).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Difficulty {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let v: f64 = s.trim().parse().map_err(|e| format!("{s:?}: {e}"))?;
        Difficulty::new(v).map_err(|e| e.to_string())
    }
}

impl fmt::Debug for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Difficulty({})", self.0)
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Expected hashes behind a target (a block's proof); sums to chain work.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Work(U256);

impl Work {
    pub const ZERO: Work = Work(U256::ZERO);

    pub fn from_be_bytes(bytes: [u8; 32]) -> Self {
        Work(U256::from_be_bytes(bytes))
    }

    pub fn to_be_bytes(self) -> [u8; 32] {
        self.0.to_be_bytes()
    }

    /// Approximate number of hashes (exact below 2^53).
    pub fn to_f64(self) -> f64 {
        self.0.to_f64()
    }
}

impl Add for Work {
    type Output = Work;
    fn add(self, rhs: Work) -> Work {
        Work(self.0.saturating_add(rhs.0))
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Work({})", hex::encode(self.to_be_bytes()))
    }
}

/// Hashes per second.
#[derive(Clone, Copy, PartialEq, PartialOrd, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hashrate(pub f64);

impl Hashrate {
    /// Hashrate from the sum of accepted share difficulties over a window:
    /// `sum_difficulty * 2^32 / seconds`.
    pub fn from_shares(sum_difficulty: f64, window: Duration) -> Hashrate {
        let secs = window.as_secs_f64();
        if secs <= 0.0 {
            return Hashrate(0.0);
        }
        Hashrate(sum_difficulty * 4_294_967_296.0 / secs)
    }
}

impl fmt::Display for Hashrate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 7] = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"];
        let mut v = self.0;
        let mut i = 0;
        while v >= 1000.0 && i + 1 < UNITS.len() {
            v /= 1000.0;
            i += 1;
        }
        write!(f, "{v:.2} {}", UNITS[i])
    }
}
