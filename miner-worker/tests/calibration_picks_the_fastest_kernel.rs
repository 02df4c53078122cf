//! Calibration ranks kernels by measured speed, not by declaration order, and spends its time
//! on the close contenders: a kernel far behind after the first measurement is not measured
//! again. Stand-in kernels here burn a known time per nonce, so the order is known.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use miner_worker::search::calibrate::{rank, CONTENDER_SHARE};
use miner_worker::search::{Kernel, Precomputed};

/// A kernel that takes `ns_per_nonce` of busy time per nonce and counts its calls.
struct Paced {
    name: &'static str,
    ns_per_nonce: u64,
    calls: AtomicUsize,
}

impl Paced {
    const fn new(name: &'static str, ns_per_nonce: u64) -> Self {
        Paced {
            name,
            ns_per_nonce,
            calls: AtomicUsize::new(0),
        }
    }
}

impl Kernel for Paced {
    fn name(&self) -> &'static str {
        self.name
    }
    fn lanes(&self) -> usize {
        1
    }
    fn search(&self, _: &Precomputed, start: u64, end: u64, _: u32, _: &mut Vec<u32>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let until = Instant::now() + Duration::from_nanos((end - start) * self.ns_per_nonce);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
}

static SLOW: Paced = Paced::new("slow", 400);
static FAST: Paced = Paced::new("fast", 100);
static CLOSE: Paced = Paced::new("close", 115);

#[test]
fn the_fastest_kernel_ranks_first_whatever_its_place_in_the_list() {
    let kernels: [&'static dyn Kernel; 3] = [&SLOW, &CLOSE, &FAST];
    let ranked = rank(&kernels, Duration::from_millis(20), 5);
    let names: Vec<&str> = ranked.iter().map(|m| m.kernel.name()).collect();
    assert_eq!(names, ["fast", "close", "slow"], "{ranked:?}");
    let fast = ranked[0].hashes_per_sec;
    assert!(
        (5e6..=1.2e7).contains(&fast),
        "a 100 ns/nonce kernel measures about 10 MH/s, got {fast}"
    );
}

#[test]
fn a_kernel_far_behind_is_measured_once_and_contenders_again() {
    static FAR: Paced = Paced::new("far", 1000);
    static LEADER: Paced = Paced::new("leader", 100);
    static NEAR: Paced = Paced::new("near", 110);
    const { assert!(100.0 / 1000.0 < CONTENDER_SHARE && 100.0 / 110.0 > CONTENDER_SHARE) };
    let kernels: [&'static dyn Kernel; 3] = [&FAR, &LEADER, &NEAR];
    rank(&kernels, Duration::from_millis(20), 4);
    // Each measurement is a warm-up call plus several timed calls.
    let per_measurement_far = FAR.calls.load(Ordering::Relaxed);
    let leader = LEADER.calls.load(Ordering::Relaxed);
    let near = NEAR.calls.load(Ordering::Relaxed);
    assert!(
        leader >= 3 * per_measurement_far && near >= 3 * per_measurement_far,
        "far: {per_measurement_far} calls, leader {leader}, near {near}"
    );
}
