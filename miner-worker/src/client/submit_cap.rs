//! How many shares per second this worker submits at most, and the difficulty floor that
//! keeps it there.
//!
//! A pool decides the share difficulty, but a hostile or broken one can set it so low that
//! every hash is a share. The worker then searches at its own floor (`hashrate / (2^32 x
//! rate / 4)`: about a quarter of the cap, so chance rarely reaches the cap) and a token
//! bucket drops what still comes over the cap. Block candidates are never dropped.

use std::time::Instant;

use protocol::Difficulty;

/// Hashes per share at difficulty 1.
const HASHES_PER_DIFF1: f64 = 4_294_967_296.0;

/// Token bucket: `rate` submits per second, bursts of one second's worth.
pub struct SubmitCap {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl SubmitCap {
    pub fn new(rate: f64) -> Self {
        SubmitCap {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    /// Whether one more submit fits now.
    pub fn take(&mut self) -> bool {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The lowest difficulty worth searching at `hashrate` (hashes per second) so that shares
    /// come at about a quarter of the cap; `None` while the hashrate is not known yet.
    pub fn floor(&self, hashrate: f64) -> Option<Difficulty> {
        let d = hashrate / (HASHES_PER_DIFF1 * self.rate / 4.0);
        Difficulty::new(d).ok()
    }
}

/// Whether two floors differ enough (2x) to rebuild the work.
pub fn moved(old: Option<Difficulty>, new: Option<Difficulty>) -> bool {
    match (old, new) {
        (None, None) => false,
        (Some(a), Some(b)) => {
            let r = a.as_f64() / b.as_f64();
            !(0.5..=2.0).contains(&r)
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_bucket_allows_the_rate_and_no_more() {
        let t0 = Instant::now();
        let mut cap = SubmitCap::new(10.0);
        cap.last = t0;
        let burst = (0..1000).filter(|_| cap.take_at(t0)).count();
        assert_eq!(burst, 10, "one second's worth at once");
        let over_ten_s = (1..=10_000)
            .filter(|i| cap.take_at(t0 + Duration::from_millis(*i)))
            .count();
        assert!(
            (99..=101).contains(&over_ten_s),
            "{over_ten_s} in 10 s at 10/s"
        );
    }

    #[test]
    fn the_floor_aims_at_a_quarter_of_the_cap() {
        let cap = SubmitCap::new(100.0);
        let f = cap.floor(100e6).unwrap().as_f64();
        let shares_per_sec = 100e6 / (f * HASHES_PER_DIFF1);
        assert!((shares_per_sec - 25.0).abs() < 1e-6, "{shares_per_sec}");
        assert!(cap.floor(0.0).is_none());
        assert!(moved(None, cap.floor(1.0)));
        assert!(!moved(cap.floor(100.0), cap.floor(150.0)));
        assert!(moved(cap.floor(100.0), cap.floor(250.0)));
    }
}
