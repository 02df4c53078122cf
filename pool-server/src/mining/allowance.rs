//! A small token bucket: how many honest-looking mistakes a channel may make before they
//! count as offences against its address.

use std::time::{Duration, Instant};

/// Stale and unknown-job rejects (or unknown messages) a channel may send without offence: a
/// burst of [`RejectAllowance::BURST`] (a new block catches a pipelining miner with a few shares
/// in flight), refilled at one per [`RejectAllowance::REFILL`].
pub struct RejectAllowance {
    tokens: f64,
    at: Instant,
}

impl RejectAllowance {
    pub const BURST: f64 = 20.0;
    pub const REFILL: Duration = Duration::from_secs(3);

    pub fn new(now: Instant) -> Self {
        RejectAllowance {
            tokens: Self::BURST,
            at: now,
        }
    }

    /// `true` while the allowance lasts.
    pub fn take(&mut self, now: Instant) -> bool {
        let refill =
            now.saturating_duration_since(self.at).as_secs_f64() / Self::REFILL.as_secs_f64();
        self.tokens = (self.tokens + refill).min(Self::BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_free_then_one_per_refill() {
        let t0 = Instant::now();
        let mut a = RejectAllowance::new(t0);
        for _ in 0..RejectAllowance::BURST as usize {
            assert!(a.take(t0));
        }
        assert!(!a.take(t0));
        assert!(a.take(t0 + RejectAllowance::REFILL));
        assert!(!a.take(t0 + RejectAllowance::REFILL));
    }
}
