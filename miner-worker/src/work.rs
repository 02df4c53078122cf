//! From a job to disjoint work for every thread.
//!
//! A job is split into work units; each unit is one (extranonce2, version bits) pair covering
//! all 2^32 nonces, so threads never overlap: they take unit numbers from one atomic counter.
//! With version rolling granted, the low unit bits roll version bits inside the mask (a new
//! midstate only) and extranonce2 changes rarely (a new coinbase and merkle root). ntime
//! follows the clock from the job's ntime, never below it and never ahead of now.
//!
//! Nothing here trusts the pool: the unit space is finite (a unit is never handed out twice;
//! when the space runs out the threads wait for new work), versions are only rolled inside
//! the mask both sides agreed on and only on a BIP 9 version, ntime arithmetic saturates, and
//! the search target is never easier than the worker's own floor (see [`Terms::floor`]),
//! except for block candidates, which are always kept.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use protocol::{
    header_bytes, Difficulty, Extranonce1, Extranonce2, Nonce, Notify, Ntime, Target, Version,
    VersionMask,
};

use crate::search::Precomputed;

/// What the pool set for the work besides the job itself.
#[derive(Debug, Clone)]
pub struct Terms {
    pub extranonce1: Extranonce1,
    pub extranonce2_size: usize,
    /// The pool's share difficulty.
    pub difficulty: Difficulty,
    /// The worker's own floor: shares easier than this are not searched for (the pool would
    /// get more shares per second than the worker submits), except block candidates.
    pub floor: Option<Difficulty>,
    /// The version bits both sides agreed to roll (what we asked AND what the pool granted).
    pub version_mask: Option<VersionMask>,
}

/// Where a job's units come from. Extranonce2 values are handed out from one counter per job
/// and extranonce1, whatever the version mask, and each publication rolls versions only
/// inside the extranonce2 values it took: two masks (a `set_version_mask` mid-job) never
/// search the same extranonce2, so no header is searched twice however the bits overlap.
#[derive(Clone, Default)]
pub struct UnitSource {
    /// The next extranonce2 value not handed out, for this job and extranonce1.
    pub extranonce2: Arc<AtomicU64>,
    /// Under this mask: the extranonce2 in use and its next version roll.
    pub cursor: Arc<parking_lot::Mutex<Option<(u64, u64)>>>,
}

/// The top three bits of a BIP 9 version: `001`.
const BIP9_TOP_MASK: u32 = 0xe000_0000;
const BIP9_TOP_BITS: u32 = 0x2000_0000;

/// A job as this worker mines it.
pub struct JobWork {
    pub job: Notify,
    pub extranonce1: Extranonce1,
    pub extranonce2_size: usize,
    /// The pool's difficulty: shares are credited at this.
    pub difficulty: Difficulty,
    /// What a hash must meet to be submitted: the pool's target, or the worker's floor
    /// when that is harder, but never harder than the network's (a block is always kept).
    pub target: Target,
    /// The network's target (from nbits): a share meeting it is a block candidate.
    pub network_target: Option<Target>,
    /// The mask rolled on this job: the agreed one, when the job's version is BIP 9.
    pub version_mask: Option<VersionMask>,
    /// Which connection the job came from: shares of an older connection are not submitted.
    pub connection: u64,
    received: Instant,
    /// Where units come from, shared by every publication of this job with these terms, so
    /// re-publishing it (a raised difficulty, the same extranonce1 again) never repeats a
    /// unit already searched.
    source: UnitSource,
    /// How many units exist (`None`: more than a `u64` counts).
    units: Option<u64>,
    /// Set by the first thread that finds the unit space used up (it says so, once).
    exhausted: AtomicBool,
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
    pub fn new(job: Notify, terms: Terms, connection: u64, source: UnitSource) -> Self {
        let pool_target = terms.difficulty.to_target();
        let network_target = job.nbits.to_target().ok();
        let target = match terms.floor {
            Some(floor) if floor > terms.difficulty => {
                let network = network_target.unwrap_or(Target::from_be_bytes([0; 32]));
                pool_target.min(floor.to_target().max(network))
            }
            _ => pool_target,
        };
        let version_mask = terms
            .version_mask
            .filter(|m| m.0 != 0 && m.0 & BIP9_TOP_MASK == 0)
            .filter(|_| job.version.0 & BIP9_TOP_MASK == BIP9_TOP_BITS);
        let roll_bits = version_mask.map_or(0, |m| m.0.count_ones().min(16));
        let space_bits = 8 * terms.extranonce2_size.min(8) as u32 + roll_bits;
        JobWork {
            job,
            extranonce1: terms.extranonce1,
            extranonce2_size: terms.extranonce2_size,
            difficulty: terms.difficulty,
            target,
            network_target,
            version_mask,
            connection,
            received: Instant::now(),
            source,
            units: 1u64.checked_shl(space_bits),
            exhausted: AtomicBool::new(false),
        }
    }

    /// How many units this job has (`None`: more than a `u64` counts).
    pub fn unit_count(&self) -> Option<u64> {
        self.units
    }

    /// Whether this call is the first to find the unit space used up.
    pub fn first_to_exhaust(&self) -> bool {
        !self.exhausted.swap(true, Ordering::Relaxed)
    }

    /// The top 32 bits of the share target, for the kernels' early reject.
    pub fn target_top(&self) -> u32 {
        u32::from_be_bytes(self.target.to_be_bytes()[..4].try_into().expect("4 bytes"))
    }

    /// Version bits this worker rolls per unit: up to 16 of the granted mask.
    fn roll_bits(&self) -> u32 {
        self.version_mask.map_or(0, |m| m.0.count_ones().min(16))
    }

    /// The next unused unit, or `None` when every extranonce2 of the job has been handed out
    /// (extranonce2 and version bits cannot make a header not searched already).
    pub fn next_unit(&self) -> Option<Unit> {
        let rolls = 1u64 << self.roll_bits();
        let extranonce2s = 1u64.checked_shl(8 * self.extranonce2_size.min(8) as u32);
        let mut cursor = self.source.cursor.lock();
        let (en2, roll) = match *cursor {
            Some((en2, next)) if next < rolls => (en2, next),
            _ => {
                let en2 = self.source.extranonce2.fetch_add(1, Ordering::Relaxed);
                if let Some(n) = extranonce2s.filter(|n| en2 >= *n) {
                    // Keep the counter at the end, so it never wraps however long threads ask.
                    self.source.extranonce2.fetch_min(n, Ordering::Relaxed);
                    return None;
                }
                (en2, 0)
            }
        };
        *cursor = Some((en2, roll + 1));
        drop(cursor);
        Some(self.unit_at(en2, roll))
    }

    /// The unit of extranonce2 counter `en2` and version roll `roll`.
    fn unit_at(&self, en2: u64, roll: u64) -> Unit {
        let en2 = Extranonce2::from_counter(en2, self.extranonce2_size);
        let roll = roll as u32;
        let (version, version_bits) = match self.version_mask {
            Some(mask) => {
                let bits = Version(deposit(roll, mask.0));
                (self.job.version.rolled(bits, mask), Some(bits))
            }
            None => (self.job.version, None),
        };
        let elapsed = u32::try_from(self.received.elapsed().as_secs()).unwrap_or(u32::MAX);
        let ntime = Ntime(
            self.job
                .ntime
                .0
                .saturating_add(elapsed)
                .min(unix_now().max(self.job.ntime.0)),
        );
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

    fn terms(en2: usize, mask: Option<VersionMask>) -> Terms {
        Terms {
            extranonce1: Extranonce1(vec![0; 4]),
            extranonce2_size: en2,
            difficulty: Difficulty::ONE,
            floor: None,
            version_mask: mask,
        }
    }

    #[test]
    fn units_are_disjoint_and_roll_versions_within_the_mask() {
        let w = JobWork::new(
            job(),
            terms(4, Some(VersionMask(0x1fffe000))),
            1,
            Default::default(),
        );
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let u = w.next_unit().unwrap();
            let bits = u.version_bits.unwrap();
            assert_eq!(bits.0 & !0x1fffe000, 0);
            assert_eq!(u.version.0 & !0x1fffe000, 0x2000_0000);
            assert!(
                seen.insert((u.extranonce2.clone(), u.version)),
                "units repeat"
            );
        }
        let plain = JobWork::new(job(), terms(4, None), 1, Default::default());
        assert_ne!(
            plain.next_unit().unwrap().extranonce2,
            plain.next_unit().unwrap().extranonce2
        );
    }

    #[test]
    fn another_mask_mid_job_never_searches_a_header_again() {
        // What the fuzzer found: the same job under a mask, then under an overlapping one.
        let shared = UnitSource::default();
        let under = |mask: u32| {
            JobWork::new(
                job(),
                terms(1, Some(VersionMask(mask))),
                1,
                UnitSource {
                    extranonce2: shared.extranonce2.clone(),
                    cursor: Default::default(),
                },
            )
        };
        let mut seen = std::collections::HashSet::new();
        for mask in [0x0000_6000, 0x0000_4000, 0x1fff_e000, 0x0000_6000] {
            let w = under(mask);
            for _ in 0..5 {
                let u = w.next_unit().unwrap();
                assert!(
                    seen.insert(u.header[..76].to_vec()),
                    "mask {mask:08x}: a header again"
                );
            }
        }
    }

    #[test]
    fn a_finite_unit_space_runs_out_instead_of_wrapping() {
        let none = JobWork::new(job(), terms(0, None), 1, Default::default());
        assert_eq!(none.unit_count(), Some(1));
        assert!(none.next_unit().is_some());
        for _ in 0..10 {
            assert!(
                none.next_unit().is_none(),
                "no second unit without extranonce2"
            );
        }
        assert!(none.first_to_exhaust());
        assert!(!none.first_to_exhaust(), "said once");

        let one = JobWork::new(job(), terms(1, None), 1, Default::default());
        let all: std::collections::HashSet<_> = std::iter::from_fn(|| one.next_unit())
            .map(|u| u.extranonce2)
            .collect();
        assert_eq!(all.len(), 256, "every one-byte extranonce2 once");

        let big = JobWork::new(
            job(),
            terms(16, Some(VersionMask::BIP320)),
            1,
            Default::default(),
        );
        assert_eq!(big.unit_count(), None, "more than a u64 counts");
        assert_eq!(big.next_unit().unwrap().extranonce2.0.len(), 16);
    }

    #[test]
    fn only_bip9_versions_inside_the_agreed_mask_are_rolled() {
        // A mask with the top bits is refused whole: the rolled version would not be BIP 9.
        let bad = JobWork::new(
            job(),
            terms(4, Some(VersionMask(u32::MAX))),
            1,
            Default::default(),
        );
        assert_eq!(bad.version_mask, None);
        assert_eq!(bad.next_unit().unwrap().version, Version(0x2000_0000));
        let mut old = job();
        old.version = Version(2);
        let w = JobWork::new(
            old,
            terms(4, Some(VersionMask::BIP320)),
            1,
            Default::default(),
        );
        let u = w.next_unit().unwrap();
        assert_eq!((u.version, u.version_bits), (Version(2), None));
    }

    #[test]
    fn ntime_near_the_end_of_time_saturates() {
        let mut j = job();
        j.ntime = Ntime(u32::MAX);
        let w = JobWork::new(j, terms(4, None), 1, Default::default());
        assert_eq!(w.next_unit().unwrap().ntime, Ntime(u32::MAX));
    }

    #[test]
    fn the_floor_raises_the_search_target_but_keeps_blocks() {
        let mut t = terms(4, None);
        t.difficulty = Difficulty::new(1e-300).unwrap();
        t.floor = Some(Difficulty::new(0.01).unwrap());
        let mut hard = job();
        hard.nbits = CompactTarget::from_consensus(0x1d00ffff);
        let w = JobWork::new(hard, t.clone(), 1, Default::default());
        assert_eq!(w.target, Difficulty::new(0.01).unwrap().to_target());
        // A network easier than the floor: every block candidate is still searched for.
        let mut easy = job();
        easy.nbits = CompactTarget::from_consensus(0x207fffff);
        let w = JobWork::new(easy.clone(), t.clone(), 1, Default::default());
        assert_eq!(w.target, easy.nbits.to_target().unwrap());
        // Never easier than the pool's own target.
        t.difficulty = Difficulty::new(1.0).unwrap();
        let w = JobWork::new(easy, t, 1, Default::default());
        assert_eq!(w.target, Difficulty::ONE.to_target());
    }

    #[test]
    fn deposit_fills_mask_bits_from_the_bottom() {
        assert_eq!(deposit(0b101, 0b1011_0000), 0b1000_0000 | 0b0001_0000);
        assert_eq!(deposit(0, 0xffff), 0);
    }
}
