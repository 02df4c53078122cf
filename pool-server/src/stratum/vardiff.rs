//! Variable difficulty: steer each session toward one share per target interval, judged on
//! the work the session was credited with, not on how many shares it sent.
//!
//! Counting shares goes wrong with real miners: cpuminer-opt keeps mining its old job (at the
//! old difficulty) until it sees an id it reads as new, others pipeline shares, and every share
//! found at the old difficulty then looks like a share at the new one, so raises compound. Here
//! the session's rate is a decaying average of *credited difficulty per second* (as ckpool's
//! diff-shares-per-second): a share counts what it was credited, whatever job it names, so
//! shares at an old difficulty cannot inflate the estimate. The ideal difficulty is that rate
//! times the target interval.
//!
//! - The average decays with a time constant of 30 target intervals; while the session is
//!   younger than that, the sum is divided by the time actually covered (ckpool's time bias),
//!   so the first estimate is simply the work so far over the time so far.
//! - A raise needs the evidence of 8 shares (effective count: a decayed sum of shares weighted
//!   by difficulty) and two shares at the current difficulty, or a retarget window, since the
//!   last change; it is judged on the estimate less one standard error (`1/sqrt(shares)`), so
//!   a lucky run of shares cannot ratchet the difficulty up look after look.
//! - A cut needs a retarget window since the last change, and is judged on the estimate plus
//!   one standard error, with one more share at the current difficulty added to the sum (no
//!   share yet is not "no hashrate"). A silent
//!   session (no share for 16 target intervals) is taken to mine at most
//!   `4 x current / silent intervals`.
//! - A change happens only outside the tolerated variance (hysteresis), moves at most x4 either
//!   way, is rounded to a tidy value and clamped to the configured bounds.

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

/// Decay time constant, in target intervals.
const DECAY_INTERVALS: f64 = 30.0;
/// Effective shares of evidence before a raise.
const RAISE_EVIDENCE: f64 = 8.0;
/// Shares at the current difficulty that allow the next change before a retarget window.
const SHARES_BEFORE_NEXT_CHANGE: u32 = 2;
/// Target intervals without a share after which silence lowers the estimate (at the right
/// difficulty the odds of such a gap are e^-16: a stall of the miner, not bad luck).
const SILENT_INTERVALS: f64 = 16.0;
/// Largest step either way.
const MAX_STEP: f64 = 4.0;

/// Credited difficulty per second, as a decaying average.
#[derive(Debug, Clone)]
struct CreditRate {
    tau: f64,
    /// When the session began mining: the estimate covers no time before it.
    since: Instant,
    /// When `sum` and `sum_sq` were last decayed.
    at: Instant,
    /// Decayed sum of credited difficulty.
    sum: f64,
    /// Decayed sum of squared credited difficulty (for the effective share count).
    sum_sq: f64,
}

impl CreditRate {
    fn new(tau: f64, now: Instant) -> Self {
        CreditRate {
            tau,
            since: now,
            at: now,
            sum: 0.0,
            sum_sq: 0.0,
        }
    }

    fn decay_to(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        let f = (-dt / self.tau).exp();
        self.sum *= f;
        self.sum_sq *= f;
        self.at = self.at.max(now);
    }

    fn add(&mut self, difficulty: f64, now: Instant) {
        self.decay_to(now);
        self.sum += difficulty;
        self.sum_sq += difficulty * difficulty;
    }

    /// The decayed sum, the decayed sum of squares, and the time they cover (in decayed
    /// seconds).
    fn estimate(&mut self, now: Instant) -> (f64, f64, f64) {
        self.decay_to(now);
        let covered = now
            .saturating_duration_since(self.since)
            .as_secs_f64()
            .max(1e-3);
        let weight = self.tau * (1.0 - (-covered / self.tau).exp());
        (self.sum, self.sum_sq, weight)
    }
}

/// The effective number of shares behind a sum (shares weighted by difficulty).
fn samples(sum: f64, sum_sq: f64) -> f64 {
    if sum_sq > 0.0 {
        sum * sum / sum_sq
    } else {
        0.0
    }
}

#[derive(Debug, Clone)]
pub struct Vardiff {
    cfg: VardiffConfig,
    rate: CreditRate,
    last_change: Instant,
    last_share: Option<Instant>,
    /// Shares credited at the current difficulty since the last change.
    shares_at_current: u32,
}

impl Vardiff {
    pub fn new(cfg: VardiffConfig, now: Instant) -> Self {
        let tau = (cfg.target_interval.as_secs_f64() * DECAY_INTERVALS).max(1e-3);
        Vardiff {
            cfg,
            rate: CreditRate::new(tau, now),
            last_change: now,
            last_share: None,
            shares_at_current: 0,
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

    /// Mining begins now (the first job went out): the estimate starts here.
    pub fn start(&mut self, now: Instant) {
        self.rate = CreditRate::new(self.rate.tau, now);
        self.last_change = now;
        self.last_share = None;
        self.shares_at_current = 0;
    }

    /// The difficulty changed (by vardiff or the miner's request).
    pub fn changed(&mut self, now: Instant) {
        self.last_change = now;
        self.shares_at_current = 0;
    }

    /// An accepted share credited at `credited` while the session's difficulty is `current`;
    /// returns a new difficulty when one is due.
    pub fn on_share(
        &mut self,
        credited: Difficulty,
        current: Difficulty,
        now: Instant,
    ) -> Option<Difficulty> {
        self.rate.add(credited.as_f64(), now);
        self.last_share = Some(now);
        if credited == current {
            self.shares_at_current += 1;
        }
        self.retarget(current, now)
    }

    /// A periodic check, so silent sessions are eased down.
    pub fn on_tick(&mut self, current: Difficulty, now: Instant) -> Option<Difficulty> {
        self.retarget(current, now)
    }

    /// What the credited rate asks for. A raise is judged on the estimate's lower bound and a
    /// cut on its upper bound (one standard error, `1/sqrt(shares)`), so a lucky run of
    /// shares does not ratchet the difficulty up, nor an unlucky gap down. For a cut the
    /// estimate counts one more share at the current difficulty (no share yet is not "no
    /// hashrate"), and a silence caps it.
    fn retarget(&mut self, current: Difficulty, now: Instant) -> Option<Difficulty> {
        let target = self.cfg.target_interval.as_secs_f64();
        let d = current.as_f64();
        let (sum, sum_sq, weight) = self.rate.estimate(now);
        let window_passed =
            now.saturating_duration_since(self.last_change) >= self.cfg.retarget_window;

        let n = samples(sum, sum_sq);
        let raise = sum / weight * target;
        let raise_low = raise * (1.0 - 1.0 / n.sqrt().max(1.0));

        let n_cut = samples(sum + d, sum_sq + d * d);
        let mut cut = (sum + d) / weight * target;
        let mut cut_high = cut * (1.0 + 1.0 / n_cut.sqrt());
        let quiet_since = self
            .last_share
            .map_or(self.last_change, |s| s.max(self.last_change));
        let silent = now.saturating_duration_since(quiet_since).as_secs_f64() / target;
        if silent >= SILENT_INTERVALS {
            let cap = d * 4.0 / silent;
            cut = cut.min(cap);
            cut_high = cut_high.min(cap);
        }

        let ratio = if raise_low > d * (1.0 + self.cfg.variance) {
            let enough = self.shares_at_current >= SHARES_BEFORE_NEXT_CHANGE || window_passed;
            (n >= RAISE_EVIDENCE && enough).then_some(raise / d)?
        } else if cut_high < d * (1.0 - self.cfg.variance) {
            window_passed.then_some(cut / d)?
        } else {
            return None;
        };
        let stepped = ratio.clamp(1.0 / MAX_STEP, MAX_STEP) * d;
        let next = self.clamp(Difficulty::new(tidy(stepped)).ok()?);
        if next == current {
            return None;
        }
        self.changed(now);
        Some(next)
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
            retarget_window: Duration::from_secs(30),
            variance: 0.3,
            min: Difficulty::new(0.001).unwrap(),
            max: Difficulty::new(1e6).unwrap(),
        }
    }

    #[test]
    fn holds_steady_inside_the_variance() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(cfg(), t0);
        let d = Difficulty::new(8.0).unwrap();
        // A share of difficulty 8 every 11 s for ten minutes: 10 % off the ideal.
        for i in 1..=55 {
            assert_eq!(v.on_share(d, d, t0 + Duration::from_secs(11 * i)), None);
        }
    }

    #[test]
    fn silent_sessions_are_eased_down_and_bounds_hold() {
        let t0 = Instant::now();
        let mut v = Vardiff::new(cfg(), t0);
        let d = Difficulty::new(100.0).unwrap();
        // No share in a retarget window: at most one share's worth of work was done.
        assert_eq!(v.on_tick(d, t0 + Duration::from_secs(29)), None);
        let n = v.on_tick(d, t0 + Duration::from_secs(40)).unwrap();
        assert!((25.0..30.0).contains(&n.as_f64()), "{n}");
        // Still nothing: down again a window later, never by more than x4.
        assert_eq!(v.on_tick(n, t0 + Duration::from_secs(60)), None);
        let n2 = v.on_tick(n, t0 + Duration::from_secs(71)).unwrap();
        assert_eq!(n2.as_f64(), tidy(n.as_f64() / 4.0));
        let mut v = Vardiff::new(cfg(), t0);
        let low = Difficulty::new(0.001).unwrap();
        assert_eq!(v.on_tick(low, t0 + Duration::from_secs(200)), None);
    }

    #[test]
    fn shares_at_an_old_difficulty_count_what_they_were_credited() {
        // 1 difficulty per second wants difficulty 10. A miner stuck at 0.1 sends ten shares
        // a second; counted as shares at the new difficulty they would look 100x too fast.
        let t0 = Instant::now();
        let mut v = Vardiff::new(cfg(), t0);
        let old = Difficulty::new(0.1).unwrap();
        let mut current = old;
        let mut t = Duration::ZERO;
        for _ in 0..3000 {
            t += Duration::from_millis(100);
            if let Some(n) = v.on_share(old, current, t0 + t) {
                current = n;
            }
            assert!(current.as_f64() <= 20.0, "compounded to {current}");
        }
        assert!((current.as_f64() / 10.0 - 1.0).abs() < 0.5, "{current}");
    }

    #[test]
    fn tidy_values() {
        assert_eq!(tidy(123.4), 123.0);
        assert!((tidy(0.123456) - 0.123).abs() < 1e-12);
    }
}
