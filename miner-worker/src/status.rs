//! What the worker has done: hashes, accepted and rejected shares with reasons, the pool's
//! difficulty; and the cpuminer-style status line operators read.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

#[derive(Default)]
pub struct Status {
    pub hashes: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub connected: AtomicBool,
    difficulty_bits: AtomicU64,
    reasons: Mutex<BTreeMap<String, u64>>,
    /// Shares found but not submitted, by why (`queue-full`, `rate-cap`).
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl Status {
    pub fn add_hashes(&self, n: u64) {
        self.hashes.fetch_add(n, Ordering::Relaxed);
    }

    pub fn accept(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn reject(&self, reason: &str) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        *self.reasons.lock().entry(reason.to_owned()).or_default() += 1;
    }

    /// A share found but not submitted: the queue to the client was full, or the submit rate
    /// cap was reached.
    pub fn drop_share(&self, why: &'static str) {
        *self.dropped.lock().entry(why).or_default() += 1;
    }

    pub fn dropped(&self) -> BTreeMap<&'static str, u64> {
        self.dropped.lock().clone()
    }

    pub fn reasons(&self) -> BTreeMap<String, u64> {
        self.reasons.lock().clone()
    }

    pub fn set_difficulty(&self, d: f64) {
        self.difficulty_bits.store(d.to_bits(), Ordering::Relaxed);
    }

    pub fn difficulty(&self) -> f64 {
        f64::from_bits(self.difficulty_bits.load(Ordering::Relaxed))
    }

    /// Record the hash counter now (called about once a second).
    pub fn sample(&self) {
        let mut s = self.samples.lock();
        s.push_back((Instant::now(), self.hashes.load(Ordering::Relaxed)));
        while s.len() > 120 {
            s.pop_front();
        }
    }

    /// Hashes per second over about the last `window`.
    pub fn hashrate(&self, window: Duration) -> f64 {
        let s = self.samples.lock();
        let Some(&(t1, h1)) = s.back() else {
            return 0.0;
        };
        let first = s
            .iter()
            .find(|(t, _)| t1.duration_since(*t) <= window)
            .copied()
            .unwrap_or((t1, h1));
        let dt = t1.duration_since(first.0).as_secs_f64();
        if dt <= 0.0 {
            0.0
        } else {
            (h1 - first.1) as f64 / dt
        }
    }

    /// `accepted 42/43 (97.7%), 14.20 MH/s, diff 64`
    pub fn line(&self) -> String {
        let a = self.accepted.load(Ordering::Relaxed);
        let total = a + self.rejected.load(Ordering::Relaxed);
        let pct = if total == 0 {
            100.0
        } else {
            100.0 * a as f64 / total as f64
        };
        format!(
            "accepted {a}/{total} ({pct:.1}%), {:.2} MH/s, diff {}",
            self.hashrate(Duration::from_secs(30)) / 1e6,
            self.difficulty()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_reads_like_cpuminer() {
        let s = Status::default();
        for _ in 0..42 {
            s.accept();
        }
        s.reject("stale");
        s.set_difficulty(64.0);
        assert_eq!(s.line(), "accepted 42/43 (97.7%), 0.00 MH/s, diff 64");
        assert_eq!(s.reasons()["stale"], 1);
    }
}
