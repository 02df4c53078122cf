//! Variable difficulty: steer each session toward one share per target interval.
//!
//! Shares are counted over a retarget window. When the observed interval strays from the target
//! by more than the allowed variance (hysteresis), difficulty is scaled by target / observed,
//! at most x4 per step, rounded to a tidy value and clamped to the configured bounds. A miner
//! that goes quiet is eased down the same way. A fast miner does not wait for the whole window:
//! three windows' worth of shares trigger a retarget early.

use std::time::{Duration, Instant};

use protocol::Difficulty;

#[derive(Debug, Clone, Copy)]
pub struct VardiffConfig {
    pub target_interval: Duration,
    pub retarget_window: Duration,
    pub variance: f64,
    pub min: Difficulty,
    pub max: Difficulty,
}

#[derive(Debug)]
pub struct Vardiff {
    cfg: VardiffConfig,
    window_start: Instant,
    shares: u32,
}

impl Vardiff {
    pub fn new(cfg: VardiffConfig, now: Instant) -> Self {
        Vardiff {
            cfg,
            window_start: now,
            shares: 0,
        }
    }

    pub fn clamp(&self, d: Difficulty) -> Difficulty {
        if d < self.cfg.min {
            self.cfg.min
        } else if d > self.cfg.max {
            self.cfg.max
        } else {
            d
        }
    }

    /// Start counting afresh (after a difficulty change made outside vardiff).
    pub fn reset(&mut self, now: Instant) {
        self.window_start = now;
        self.shares = 0;
    }

    /// An accepted share; returns a new difficulty when one is due.
    pub fn on_share(&mut self, current: Difficulty, now: Instant) -> Option<Difficulty> {
        self.shares += 1;
        let elapsed = now.duration_since(self.window_start);
        let expected =
            self.cfg.retarget_window.as_secs_f64() / self.cfg.target_interval.as_secs_f64();
        if elapsed >= self.cfg.retarget_window || self.shares as f64 >= 3.0 * expected.max(1.0) {
            return self.retarget(current, now);
        }
        None
    }

    /// A periodic check, so silent sessions are eased down.
    pub fn on_tick(&mut self, current: Difficulty, now: Instant) -> Option<Difficulty> {
        if now.duration_since(self.window_start) >= self.cfg.retarget_window {
            return self.retarget(current, now);
        }
        None
    }

    fn retarget(&mut self, current: Difficulty, now: Instant) -> Option<Difficulty> {
        let elapsed = now
            .duration_since(self.window_start)
            .as_secs_f64()
            .max(0.001);
        let target = self.cfg.target_interval.as_secs_f64();
        // With no share, the interval is at least the elapsed time.
        let observed = elapsed / (self.shares.max(1) as f64);
        self.reset(now);
        let ratio = observed / target;
        if (ratio - 1.0).abs() <= self.cfg.variance {
            return None;
        }
        let scale = (target / observed).clamp(0.25, 4.0);
        let proposed = tidy(current.as_f64() * scale);
        let next = self.clamp(Difficulty::new(proposed).ok()?);
        (next != current).then_some(next)
    }
}

/// Round to a value miners display well: integers above 16, three significant digits below.
fn tidy(d: f64) -> f64 {
    if d >= 16.0 {
        d.round()
    } else {
        let mag = 10f64.powi(d.log10().floor() as i32 - 2);
        (d / mag).round() * mag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> VardiffConfig {
        VardiffConfig {
            target_interval: Duration::from_secs(10),
            retarget_window: Duration::from_secs(60),
            variance: 0.3,
            min: Difficulty::new(0.001).unwrap(),
            max: Difficulty::new(1e6).unwrap(),
        }
    }

    /// Simulate a miner of `hashrate` H/s: shares arrive every diff * 2^32 / hashrate seconds.
    fn converge(hashrate: f64, start: f64) -> f64 {
        let t0 = Instant::now();
        let mut v = Vardiff::new(cfg(), t0);
        let mut d = Difficulty::new(start).unwrap();
        let mut t = 0.0;
        for _ in 0..400 {
            t += d.as_f64() * 4_294_967_296.0 / hashrate;
            if let Some(n) = v.on_share(d, t0 + Duration::from_secs_f64(t)) {
                d = n;
            }
        }
        d.as_f64()
    }

    #[test]
    fn converges_from_far_below_and_far_above() {
        // 1 GH/s with 10 s shares wants difficulty 2.33.
        let want = 1e9 * 10.0 / 4_294_967_296.0;
        for start in [0.001, 1000.0] {
            let got = converge(1e9, start);
            assert!(
                (got / want - 1.0).abs() < 0.35,
                "start {start}: {got} vs {want}"
            );
        }
    }

    #[test]
    fn holds_steady_inside_the_variance() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(cfg(), t0);
        let d = Difficulty::new(8.0).unwrap();
        // Exactly 6 shares in 66 s: 11 s intervals, within 30 % of 10 s.
        for i in 1..=6 {
            assert_eq!(v.on_share(d, t0 + Duration::from_secs(11 * i)), None);
        }
    }

    #[test]
    fn silent_sessions_are_eased_down_and_bounds_hold() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(cfg(), t0);
        let d = Difficulty::new(100.0).unwrap();
        let n = v.on_tick(d, t0 + Duration::from_secs(61)).unwrap();
        assert_eq!(n.as_f64(), 25.0);
        let mut v = Vardiff::new(cfg(), t0);
        let low = Difficulty::new(0.001).unwrap();
        assert_eq!(v.on_tick(low, t0 + Duration::from_secs(61)), None);
    }
}
