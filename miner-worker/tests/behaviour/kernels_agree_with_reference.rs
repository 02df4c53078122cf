//! Every kernel this CPU can run agrees with the reference SHA-256d: on random headers, at
//! every lane position, at the very end of the nonce space (no wrap, nothing skipped or
//! repeated), and it finds the real nonces of real mainnet blocks. Kernels the CPU lacks are
//! skipped, and the test says so.

use miner_worker::search::{self, Kernel, Precomputed};
use protocol::sha256d::sha256d;
use rand::{Rng, SeedableRng};

fn runnable() -> Vec<&'static dyn Kernel> {
    let mut v = Vec::new();
    for k in search::all() {
        if search::is_supported(k.name()) {
            v.push(k);
        } else {
            eprintln!(
                "skipping kernel {}: this CPU lacks the instructions it needs",
                k.name()
            );
        }
    }
    v
}

/// The top 32 bits of the header hash read as a little-endian number.
fn top_word(header: &[u8; 80], nonce: u32) -> u32 {
    let mut h = *header;
    h[76..].copy_from_slice(&nonce.to_le_bytes());
    let d = sha256d(&h);
    u32::from_le_bytes(d[28..32].try_into().unwrap())
}

#[test]
fn every_kernel_matches_the_reference_on_random_headers_and_lanes() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for k in runnable() {
        for _ in 0..12 {
            let mut header = [0u8; 80];
            rng.fill(&mut header[..]);
            let pre = Precomputed::from_header(&header);
            // An unaligned start and a length that is not a multiple of any lane count.
            let start = rng.gen_range(0..u32::MAX as u64 - 1000);
            let end = start + 97 + rng.gen_range(0..64);
            let tops: Vec<u32> = (start..end).map(|n| top_word(&header, n as u32)).collect();
            let mut sorted = tops.clone();
            sorted.sort_unstable();
            for threshold in [
                sorted[sorted.len() / 4],
                sorted[sorted.len() / 2],
                sorted[sorted.len() - 1],
            ] {
                let want: Vec<u32> = (start..end)
                    .zip(&tops)
                    .filter(|(_, t)| **t <= threshold)
                    .map(|(n, _)| n as u32)
                    .collect();
                let mut got = Vec::new();
                k.search(&pre, start, end, threshold, &mut got);
                assert_eq!(got, want, "kernel {} disagrees (start {start})", k.name());
            }
        }
    }
}

#[test]
fn the_range_ending_at_ffffffff_is_searched_exactly_once() {
    let header = [0x42u8; 80];
    let pre = Precomputed::from_header(&header);
    for k in runnable() {
        for len in [1u64, 37, 64, 100] {
            let start = (1u64 << 32) - len;
            let mut got = Vec::new();
            k.search(&pre, start, 1 << 32, u32::MAX, &mut got);
            let want: Vec<u32> = (start..1 << 32).map(|n| n as u32).collect();
            assert_eq!(
                got,
                want,
                "kernel {} at the top of the nonce space",
                k.name()
            );
        }
    }
}

struct RealBlock {
    version: u32,
    prev: &'static str,
    merkle: &'static str,
    time: u32,
    bits: u32,
    nonce: u32,
}

fn header_of(b: &RealBlock) -> [u8; 80] {
    let mut h = [0u8; 80];
    h[..4].copy_from_slice(&b.version.to_le_bytes());
    let mut prev = hex::decode(b.prev).unwrap();
    prev.reverse();
    h[4..36].copy_from_slice(&prev);
    let mut merkle = hex::decode(b.merkle).unwrap();
    merkle.reverse();
    h[36..68].copy_from_slice(&merkle);
    h[68..72].copy_from_slice(&b.time.to_le_bytes());
    h[72..76].copy_from_slice(&b.bits.to_le_bytes());
    h
}

#[test]
fn every_kernel_finds_the_real_nonce_of_mainnet_blocks() {
    let blocks = [
        RealBlock {
            version: 1,
            prev: "0000000000000000000000000000000000000000000000000000000000000000",
            merkle: "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
            time: 1231006505,
            bits: 0x1d00ffff,
            nonce: 2083236893,
        },
        RealBlock {
            version: 1,
            prev: "000000002a22cfee1f2c846adbd12b3e183d4f97683f85dad08a79780a84bd55",
            merkle: "7dac2c5666815c17a3b36427de37bb9d2e2c5ccec3f8633eb91a4205cb4c10ff",
            time: 1231731025,
            bits: 0x1d00ffff,
            nonce: 1889418792,
        },
        RealBlock {
            version: 1,
            prev: "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81",
            merkle: "2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3",
            time: 1305998791,
            bits: 0x1a44b9f2,
            nonce: 2504433986,
        },
    ];
    for k in runnable() {
        for b in &blocks {
            let header = header_of(b);
            let pre = Precomputed::from_header(&header);
            let target = protocol::CompactTarget::from_consensus(b.bits)
                .to_target()
                .unwrap();
            let top = u32::from_be_bytes(target.to_be_bytes()[..4].try_into().unwrap());
            let start = b.nonce as u64 - 5000;
            let mut found = Vec::new();
            k.search(&pre, start, b.nonce as u64 + 5000, top, &mut found);
            assert!(
                found.contains(&b.nonce),
                "kernel {} missed nonce {}",
                k.name(),
                b.nonce
            );
            // Candidates pass the top-word test; only the real nonce meets the full target.
            let full: Vec<u32> = found
                .iter()
                .copied()
                .filter(|n| {
                    let mut h = header;
                    h[76..].copy_from_slice(&n.to_le_bytes());
                    let hash = protocol::bitcoin::BlockHash::from_byte_array(sha256d(&h));
                    target.is_met_by(&hash)
                })
                .collect();
            assert_eq!(full, vec![b.nonce], "kernel {}", k.name());
        }
    }
}

use protocol::bitcoin::hashes::Hash;
