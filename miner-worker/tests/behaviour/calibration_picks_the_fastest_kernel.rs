//! Calibration ranks kernels by measured speed, not by declaration order, and spends its time
//! on the close contenders: a kernel far behind after the first measurement is not measured
//! again. The ranking is fed known rates (with the noise a shared machine adds), so a busy
//! machine cannot change the outcome; the measurement itself is checked against a stand-in
//! kernel that cannot run faster than its pace.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use miner_worker::search::calibrate::{measure_once, rank_by, CONTENDER_SHARE};
use miner_worker::search::{Kernel, Precomputed};

/// A kernel that takes at least `ns_per_nonce` of busy time per nonce.
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

/// How often each kernel was measured.
type Counts = std::rc::Rc<std::cell::RefCell<HashMap<&'static str, usize>>>;

/// Known rates with a fixed +-6 % wobble per call (what a noisy machine does to a measurement),
/// counting how often each kernel is measured.
fn known_rates(
    rates: &'static [(&'static str, f64)],
) -> (impl FnMut(&dyn Kernel, u64) -> f64, Counts) {
    let counts = Counts::default();
    let seen = counts.clone();
    let mut n = 0u32;
    let measure = move |k: &dyn Kernel, _offset: u64| {
        n += 1;
        let wobble = [1.06, 0.94, 1.0, 0.97, 1.03][n as usize % 5];
        let (name, rate) = rates.iter().find(|(name, _)| *name == k.name()).unwrap();
        *seen.borrow_mut().entry(*name).or_insert(0) += 1;
        rate * wobble
    };
    (measure, counts)
}

static SLOW: Paced = Paced::new("slow", 400);
static FAST: Paced = Paced::new("fast", 100);
static CLOSE: Paced = Paced::new("close", 115);

#[test]
fn the_fastest_kernel_ranks_first_whatever_its_place_in_the_list() {
    let kernels: [&'static dyn Kernel; 3] = [&SLOW, &CLOSE, &FAST];
    let (measure, _) = known_rates(&[("slow", 2.5e6), ("close", 8.7e6), ("fast", 1e7)]);
    let ranked = rank_by(&kernels, 5, measure);
    let names: Vec<&str> = ranked.iter().map(|m| m.kernel.name()).collect();
    assert_eq!(names, ["fast", "close", "slow"], "{ranked:?}");
}

#[test]
fn a_kernel_far_behind_is_measured_once_and_contenders_again() {
    static FAR: Paced = Paced::new("far", 1000);
    static LEADER: Paced = Paced::new("leader", 100);
    static NEAR: Paced = Paced::new("near", 110);
    const { assert!(100.0 / 1000.0 < CONTENDER_SHARE && 100.0 / 110.0 > CONTENDER_SHARE) };
    let kernels: [&'static dyn Kernel; 3] = [&FAR, &LEADER, &NEAR];
    let (measure, counts) = known_rates(&[("far", 1e6), ("leader", 1e7), ("near", 9.1e6)]);
    rank_by(&kernels, 4, measure);
    let counts = counts.borrow();
    assert_eq!(counts["far"], 1, "{counts:?}");
    assert_eq!(counts["leader"], 4, "{counts:?}");
    assert_eq!(counts["near"], 4, "{counts:?}");
}

#[test]
fn a_measurement_never_reads_faster_than_the_kernel_runs() {
    // Preemption can only make a measurement slower, never faster than the pace.
    let rate = measure_once(&FAST, Duration::from_millis(20), 0);
    assert!(
        rate > 0.0 && rate <= 1.05e7,
        "a 100 ns/nonce kernel measured {rate}"
    );
    assert!(
        FAST.calls.load(Ordering::Relaxed) >= 2,
        "a warm-up call and timed calls"
    );
}
