//! The values Stratum V1 carries as hex strings, each as its own type with its byte order.
//!
//! Stratum writes 32-bit header fields (`version`, `nbits`, `ntime`, `nonce`, version bits) as
//! 8 hex digits of the big-endian number, while the header stores them little-endian; it writes
//! `prevhash` as the header's 32 bytes with every 4-byte word byte-swapped. These types parse the
//! wire form once, with a clear error for a wrong length, and hand out header-ready values.
//! Hex is accepted in either case and emitted in lower case.

use std::fmt;
use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::BlockHash;
use serde_json::Value;

use crate::error::ParamsError;

/// Decode hex of any even length (either case) into bytes.
pub(crate) fn decode_hex(name: &'static str, s: &str) -> Result<Vec<u8>, ParamsError> {
    if !s.len().is_multiple_of(2) {
        return Err(ParamsError::Hex {
            name,
            reason: format!("odd number of hex characters ({})", s.len()),
        });
    }
    hex::decode(s).map_err(|e| ParamsError::Hex {
        name,
        reason: e.to_string(),
    })
}

/// Decode hex of exactly `bytes` bytes.
pub(crate) fn decode_hex_exact<const N: usize>(
    name: &'static str,
    s: &str,
) -> Result<[u8; N], ParamsError> {
    if s.len() != 2 * N {
        return Err(ParamsError::HexLength {
            name,
            expected: 2 * N,
            got: s.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|e| ParamsError::Hex {
        name,
        reason: e.to_string(),
    })?;
    Ok(out)
}

pub(crate) fn value_str<'a>(name: &'static str, v: &'a Value) -> Result<&'a str, ParamsError> {
    v.as_str().ok_or(ParamsError::WrongType {
        name,
        expected: "a string",
    })
}

macro_rules! u32_field {
    ($(#[$doc:meta])* $name:ident, $wire:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub u32);

        impl $name {
            /// Parse the wire form: exactly 8 hex digits of the big-endian number.
            pub fn from_hex(s: &str) -> Result<Self, ParamsError> {
                decode_hex_exact::<4>($wire, s).map(|b| $name(u32::from_be_bytes(b)))
            }

            pub fn to_hex(self) -> String {
                format!("{:08x}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:08x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:08x}", self.0)
            }
        }
    };
}

u32_field!(
    /// Header timestamp (`ntime`), seconds since the Unix epoch.
    Ntime,
    "ntime"
);
u32_field!(
    /// Header nonce.
    Nonce,
    "nonce"
);
u32_field!(
    /// Block version as a 32-bit field (the header stores it little-endian).
    Version,
    "version"
);
u32_field!(
    /// BIP 310 version-rolling mask: the version bits a miner may change.
    VersionMask,
    "version_mask"
);

impl Version {
    /// The version with `rolled` substituted for the bits under `mask` (BIP 310).
    pub fn rolled(self, rolled: Version, mask: VersionMask) -> Version {
        Version((self.0 & !mask.0) | (rolled.0 & mask.0))
    }
}

impl VersionMask {
    /// The mask BIP 320 leaves to miners.
    pub const BIP320: VersionMask = VersionMask(0x1fff_e000);
}

macro_rules! bytes_field {
    ($(#[$doc:meta])* $name:ident, $wire:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub Vec<u8>);

        impl $name {
            pub fn from_hex(s: &str) -> Result<Self, ParamsError> {
                decode_hex($wire, s).map($name)
            }

            pub fn to_hex(&self) -> String {
                hex::encode(&self.0)
            }

            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }

            pub fn len(&self) -> usize {
                self.0.len()
            }

            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

bytes_field!(
    /// The per-connection part of the coinbase's extranonce, chosen by the pool.
    Extranonce1,
    "extranonce1"
);
bytes_field!(
    /// The part of the coinbase's extranonce the miner rolls; its length is fixed per session.
    Extranonce2,
    "extranonce2"
);
bytes_field!(
    /// Raw bytes carried as hex (coinbase halves).
    HexBytes,
    "hex"
);

impl Extranonce2 {
    /// The extranonce2 for `counter`, `size` bytes, big-endian as miners print it.
    pub fn from_counter(counter: u64, size: usize) -> Extranonce2 {
        let be = counter.to_be_bytes();
        let mut v = vec![0u8; size];
        let n = size.min(8);
        v[size - n..].copy_from_slice(&be[8 - n..]);
        Extranonce2(v)
    }
}

/// A field that is text the miner or pool chose (an `Arc<str>` inside): shown as itself, and
/// as `Name(text)` in debug output.
macro_rules! text_field {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), &*self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// The subscription id a pool returns from `mining.subscribe` (the id of its `mining.notify`
/// subscription). cgminer, cpuminer and bfgminer send it back as the second subscribe
/// parameter when they reconnect, asking to resume that session. It is opaque: at most
/// [`SubscriptionId::MAX_LEN`] printable ASCII characters, anything else is no id at all.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SubscriptionId(Arc<str>);

impl SubscriptionId {
    pub const MAX_LEN: usize = 64;

    /// `None` for an empty, overlong or non-printable id.
    pub fn parse(s: &str) -> Option<Self> {
        let ok =
            !s.is_empty() && s.len() <= Self::MAX_LEN && s.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| SubscriptionId(Arc::from(s)))
    }
}

text_field!(SubscriptionId);

/// A job's identifier. Pools choose any string; miners echo it back verbatim.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(Arc<str>);

impl JobId {
    pub fn new(s: impl AsRef<str>) -> Self {
        JobId(Arc::from(s.as_ref()))
    }
}

text_field!(JobId);

/// The previous block hash in Stratum's wire order: the header's 32 bytes (the hash's
/// internal, little-endian order) with each 4-byte word byte-swapped.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PrevHash(BlockHash);

impl PrevHash {
    pub fn from_block_hash(hash: BlockHash) -> Self {
        PrevHash(hash)
    }

    pub fn block_hash(self) -> BlockHash {
        self.0
    }

    pub fn from_hex(s: &str) -> Result<Self, ParamsError> {
        let wire = decode_hex_exact::<32>("prevhash", s)?;
        Ok(PrevHash(BlockHash::from_byte_array(swap_words(wire))))
    }

    pub fn to_hex(self) -> String {
        hex::encode(swap_words(self.0.to_byte_array()))
    }
}

/// Byte-swap every 4-byte word (its own inverse).
fn swap_words(mut b: [u8; 32]) -> [u8; 32] {
    for chunk in b.chunks_exact_mut(4) {
        chunk.reverse();
    }
    b
}

/// A worker's login as miners send it: `account.rig` (the rig part optional).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerName(Arc<str>);

/// The account (payout) part of a worker name `account.rig`: before the first `.`.
pub fn account_of(worker: &str) -> &str {
    worker.split_once('.').map_or(worker, |(a, _)| a)
}

impl WorkerName {
    pub fn new(s: impl AsRef<str>) -> Self {
        WorkerName(Arc::from(s.as_ref()))
    }

    /// The account (payout) part, before the first `.`.
    pub fn account(&self) -> &str {
        account_of(&self.0)
    }

    /// The rig part after the first `.`, if any.
    pub fn rig(&self) -> Option<&str> {
        self.0.split_once('.').map(|(_, r)| r)
    }
}

text_field!(WorkerName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u32_fields_reject_wrong_length_and_accept_upper_case() {
        assert_eq!(Ntime::from_hex("504E86B9").unwrap(), Ntime(0x504e86b9));
        assert_eq!(
            Nonce::from_hex("abc").unwrap_err(),
            ParamsError::HexLength {
                name: "nonce",
                expected: 8,
                got: 3
            }
        );
        assert!(matches!(
            Nonce::from_hex("zzzzzzzz"),
            Err(ParamsError::Hex { .. })
        ));
    }

    #[test]
    fn version_rolling_only_touches_masked_bits() {
        let v = Version(0x2000_0000).rolled(Version(0xffff_ffff), VersionMask::BIP320);
        assert_eq!(v, Version(0x3fff_e000));
    }

    #[test]
    fn extranonce2_counter_is_big_endian_and_sized() {
        assert_eq!(Extranonce2::from_counter(0x0102, 4).to_hex(), "00000102");
        assert_eq!(Extranonce2::from_counter(1, 2).to_hex(), "0001");
    }

    #[test]
    fn prevhash_round_trips_wire_order() {
        let wire = "4128bf630f57387b00e25b419d1bb77e667e4036a7d8fee80000015600000000";
        assert_eq!(PrevHash::from_hex(wire).unwrap().to_hex(), wire);
    }

    #[test]
    fn worker_name_splits_account_and_rig() {
        let w = WorkerName::new("bc1qxyz.rig1");
        assert_eq!(w.account(), "bc1qxyz");
        assert_eq!(w.rig(), Some("rig1"));
        assert_eq!(WorkerName::new("alice").rig(), None);
    }
}
