//! From a job to disjoint work for every thread.
//!
//! A job is split into work units; each unit is one (extranonce2, version bits) pair covering
//! all 2^32 nonces, so threads never overlap: they take unit numbers from one atomic counter.
//! With version rolling granted, the low unit bits roll version bits inside the mask (a new
//! midstate only) and extranonce2 changes rarely (a new coinbase and merkle root). ntime
//! follows the clock from the job's ntime, never below it and never ahead of now.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use protocol::{
    header_bytes, Difficulty, Extranonce1, Extranonce2, Nonce, Notify, Ntime, Target, Version,
    VersionMask,
};

use crate::search::Precomputed;

/// A job as this worker mines it.
pub struct JobWork {
    pub job: Notify,
    pub extranonce1: Extranonce1,
    pub extranonce2_size: usize,
    /// Shares must meet this (the job's difficulty, or a later higher one).
    pub difficulty: Difficulty,
    pub target: Target,
    pub version_mask: Option<VersionMask>,
    /// Which connection the job came from: shares of an older connection are not submitted.
    pub connection: u64,
    received: Instant,
    /// Unit counter shared by every job of one connection and extranonce1, so re-publishing
    /// a job (a raised difficulty) never repeats a unit already searched.
    next_unit: Arc<AtomicU64>,
}

/// One thread's slice: every nonce of one (extranonce2, version) pair.
pub struct Unit {
    pub pre: Precomputed,
    pub extranonce2: Extranonce2,
    pub ntime: Ntime,
    pub version: Version,
    /// The rolled bits to submit, when version rolling is on.
    pub version_bits: Option<Version>,
    pub header: [u8; 80],
}

fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// Place the low bits of `value` into the set bits of `mask`, lowest first.
fn deposit(mut value: u32, mask: u32) -> u32 {
    let mut out = 0;
    let mut m = mask;
    while m != 0 && value != 0 {
        let bit = m & m.wrapping_neg();
        if value & 1 == 1 {
            out |= bit;
        }
        value >>= 1;
        m &= m - 1;
    }
    out
}

impl JobWork {
    pub fn new(
        job: Notify,
        extranonce1: Extranonce1,
        extranonce2_size: usize,
        difficulty: Difficulty,
        version_mask: Option<VersionMask>,
        connection: u64,
        units: Arc<AtomicU64>,
    ) -> Self {
        JobWork {
            job,
            extranonce1,
            extranonce2_size,
            difficulty,
            target: difficulty.to_target(),
            version_mask,
            connection,
            received: Instant::now(),
            next_unit: units,
        }
    }

    /// The top 32 bits of the share target, for the kernels' early reject.
    pub fn target_top(&self) -> u32 {
        u32::from_be_bytes(self.target.to_be_bytes()[..4].try_into().expect("4 bytes"))
    }

    /// Version bits this worker rolls per unit: up to 16 of the granted mask.
    fn roll_bits(&self) -> u32 {
        self.version_mask.map_or(0, |m| m.0.count_ones().min(16))
    }

    /// The next unused unit.
    pub fn next_unit(&self) -> Unit {
        let id = self.next_unit.fetch_add(1, Ordering::Relaxed);
        self.unit(id)
    }

    pub fn unit(&self, id: u64) -> Unit {
        let k = self.roll_bits();
        let roll = (id & ((1u64 << k) - 1)) as u32;
        let en2 = Extranonce2::from_counter(id >> k, self.extranonce2_size);
        let (version, version_bits) = match self.version_mask {
            Some(mask) => {
                let bits = Version(deposit(roll, mask.0));
                (self.job.version.rolled(bits, mask), Some(bits))
            }
            None => (self.job.version, None),
        };
        let elapsed = self.received.elapsed().as_secs() as u32;
        let ntime = Ntime((self.job.ntime.0 + elapsed).min(unix_now().max(self.job.ntime.0)));
        let header =
            header_bytes(
                &self
                    .job
                    .header(&self.extranonce1, &en2, ntime, Nonce(0), version),
            );
        Unit {
            pre: Precomputed::from_header(&header),
            extranonce2: en2,
            ntime,
            version,
            version_bits,
            header,
        }
    }
}

impl Unit {
    /// The full hash for `nonce`: kernels only pre-filter, this decides.
    pub fn hash(&self, nonce: u32) -> protocol::bitcoin::BlockHash {
        use protocol::bitcoin::hashes::Hash;
        let mut h = self.header;
        h[76..].copy_from_slice(&nonce.to_le_bytes());
        protocol::bitcoin::BlockHash::from_byte_array(protocol::sha256d::sha256d(&h))
    }
}

/// The job every thread should be mining, published by the Stratum client.
#[derive(Default)]
pub struct WorkBoard {
    current: RwLock<Option<Arc<JobWork>>>,
    /// Bumps when work must be dropped at once (clean jobs, new connection, no pool).
    generation: AtomicU64,
    /// Bumps on every new job.
    version: AtomicU64,
}

impl WorkBoard {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn publish(&self, work: JobWork, clean: bool) {
        *self.current.write() = Some(Arc::new(work));
        if clean {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// No pool: stop mining.
    pub fn clear(&self) {
        *self.current.write() = None;
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    pub fn current(&self) -> Option<Arc<JobWork>> {
        self.current.read().clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::bitcoin::hashes::Hash;
    use protocol::{CompactTarget, HexBytes, JobId, PrevHash};

    fn job() -> Notify {
        Notify {
            job_id: JobId::new("1"),
            prevhash: PrevHash::from_block_hash(protocol::bitcoin::BlockHash::all_zeros()),
            coinb1: HexBytes(vec![1, 2, 3]),
            coinb2: HexBytes(vec![4, 5]),
            merkle_branch: vec![],
            version: Version(0x2000_0000),
            nbits: CompactTarget::from_consensus(0x1d00ffff),
            ntime: Ntime(unix_now()),
            clean_jobs: true,
        }
    }

    #[test]
    fn units_are_disjoint_and_roll_versions_within_the_mask() {
        let w = JobWork::new(
            job(),
            Extranonce1(vec![0; 4]),
            4,
            Difficulty::ONE,
            Some(VersionMask(0x1fffe000)),
            1,
            Default::default(),
        );
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let u = w.next_unit();
            let bits = u.version_bits.unwrap();
            assert_eq!(bits.0 & !0x1fffe000, 0);
            assert_eq!(u.version.0 & !0x1fffe000, 0x2000_0000);
            assert!(
                seen.insert((u.extranonce2.clone(), u.version)),
                "units repeat"
            );
        }
        let plain = JobWork::new(
            job(),
            Extranonce1(vec![0; 4]),
            4,
            Difficulty::ONE,
            None,
            1,
            Default::default(),
        );
        assert_ne!(plain.next_unit().extranonce2, plain.next_unit().extranonce2);
    }

    #[test]
    fn deposit_fills_mask_bits_from_the_bottom() {
        assert_eq!(deposit(0b101, 0b1011_0000), 0b1000_0000 | 0b0001_0000);
        assert_eq!(deposit(0, 0xffff), 0);
    }
}
