//! SHA-256d, the hash of Bitcoin headers and transactions, and the SHA-256 compression
//! function that search kernels build their midstate with.
//!
//! This is the reference every hand-written kernel in the worker is tested against.

use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

/// SHA-256's initial state.
pub const SHA256_IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256(SHA-256(data)), in the hash's internal byte order.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

/// SHA-256d of the concatenation of `parts`, without making it (a coinbase from its four
/// pieces, for every share).
pub fn sha256d_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut first = Sha256::new();
    for part in parts {
        first.update(part);
    }
    Sha256::digest(first.finalize()).into()
}

/// Run the SHA-256 compression function on one 64-byte block.
pub fn compress(state: &mut [u32; 8], block: &[u8; 64]) {
    sha2::compress256(state, &[*GenericArray::from_slice(block)]);
}

/// The SHA-256 state after the header's first 64 bytes: constant for a job and extranonce2,
/// so kernels compute it once and hash only the last 16 bytes per nonce.
pub fn midstate(header: &[u8; 80]) -> [u32; 8] {
    let mut state = SHA256_IV;
    compress(&mut state, header[..64].try_into().expect("64 bytes"));
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_in_parts_is_hashing_the_whole() {
        let whole: Vec<u8> = (0..=255u8).cycle().take(300).collect();
        for cuts in [[0, 0, 0], [1, 64, 65], [63, 64, 200], [100, 150, 300]] {
            let parts = [
                &whole[..cuts[0]],
                &whole[cuts[0]..cuts[1]],
                &whole[cuts[1]..cuts[2]],
                &whole[cuts[2]..],
            ];
            assert_eq!(sha256d_parts(&parts), sha256d(&whole));
        }
    }

    #[test]
    fn empty_string_vector() {
        // SHA-256d("") = sha256(e3b0c442...b855)
        assert_eq!(
            hex::encode(sha256d(b"")),
            "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
        );
    }

    #[test]
    fn midstate_then_tail_equals_first_hash() {
        let header = [7u8; 80];
        let mut state = midstate(&header);
        let mut tail = [0u8; 64];
        tail[..16].copy_from_slice(&header[64..]);
        tail[16] = 0x80;
        tail[62] = 0x02; // 640 bits
        tail[63] = 0x80;
        compress(&mut state, &tail);
        let mut first = [0u8; 32];
        for (i, w) in state.iter().enumerate() {
            first[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
        }
        assert_eq!(first, <[u8; 32]>::from(Sha256::digest(header)));
    }
}
