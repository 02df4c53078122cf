//! Variable difficulty: steer each session toward one share per target interval, judged on
//! the work the session was credited with, not on how many shares it sent.
//!
//! Counting shares goes wrong with real miners: cpuminer-opt keeps mining its old job (at the
//! old difficulty) until it sees an id it reads as new, others pipeline shares, and every share
//! found at the old difficulty then looks like a share at the new one, so raises compound.
//! Here each share counts what it was credited, relative to the difficulty in effect (a share
//! credited at a quarter of the current difficulty counts a quarter), over the time spent at
//! each difficulty weighted by its inverse: the maximum-likelihood rate of shares whose
//! difficulty changes. The ideal difficulty is that rate (credited difficulty per second, as
//! ckpool's diff-shares-per-second) times the target interval.
//!
//! - The sums decay with a time constant of 60 target intervals (about 120 shares of memory,
//!   +-9 %: steady sessions do not drift out of the hysteresis by chance); a young session's
//!   estimate covers exactly the time it has mined.
//! - A raise needs the evidence of 8 shares (effective count, `sum^2 / sum of squares`) and two
//!   shares at the current difficulty, or a retarget window, since the last change. It is
//!   judged on, and goes to, the estimate less one standard error (`1/sqrt(shares)`): the
//!   winner's curse of acting on a lucky run would otherwise leave the difficulty above the
//!   ideal, where shares are rare and a cut is slow to prove. Later raises refine from below.
//! - A cut needs a retarget window since the last change and is judged on the estimate with
//!   one more share at the current difficulty (no share yet is not "no hashrate"); it goes to
//!   what the shares say. A silent session (no share for 16 target intervals) is taken to
//!   mine at most `4 x current / silent intervals`.
//! - A change happens only outside the tolerated variance (hysteresis), raises at most x4 and
//!   cuts at most x16, is rounded to a tidy value and clamped to the configured bounds.
//!
//! `tests/vardiff_settles_for_every_client_kind.rs` checks the property on thousands
//! of simulated sessions; the constants here are what made it hold.

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
const DECAY_INTERVALS: f64 = 60.0;
/// Effective shares of evidence before a raise.
const RAISE_EVIDENCE: f64 = 8.0;
/// Shares at the current difficulty that allow the next change before a retarget window.
const SHARES_BEFORE_NEXT_CHANGE: u32 = 2;
/// Target intervals without a share after which silence lowers the estimate (at the right
/// difficulty the odds of such a gap are e^-16: a stall of the miner, not bad luck).
const SILENT_INTERVALS: f64 = 16.0;
/// Largest raise: the estimate is young when it is far off, and a raise past the ideal is
/// slow to undo (shares become rare).
const MAX_RAISE: f64 = 4.0;
/// Largest cut: a cut below the ideal costs only a burst of shares and is undone within
/// seconds, so a miner started far too high is not left without shares for minutes.
const MAX_CUT: f64 = 16.0;

/// The session's share rate as a decaying, exposure-weighted estimate: shares counted in
/// units of the difficulty in effect when they arrive (a share credited at half the current
/// difficulty counts half), over the time spent at each difficulty divided by that difficulty.
/// That is the maximum-likelihood rate of a Poisson process whose difficulty changes, so a
/// rare share found at a high difficulty weighs what it tells (one share), not its size, and
/// shares still arriving at an old difficulty count exactly the work they stand for.
#[derive(Debug, Clone)]
struct ShareRate {
    tau: f64,
    /// When the sums were last brought up to date.
    at: Instant,
    /// The difficulty in effect since `at`.
    difficulty: f64,
    /// Decayed sum of shares, each `credited / difficulty in effect`.
    shares: f64,
    /// Decayed sum of their squares (for the effective share count).
    shares_sq: f64,
    /// Decayed integral of `dt / difficulty in effect`.
    exposure: f64,
}

impl ShareRate {
    fn new(tau: f64, difficulty: f64, now: Instant) -> Self {
        ShareRate {
            tau,
            at: now,
            difficulty,
            shares: 0.0,
            shares_sq: 0.0,
            exposure: 0.0,
        }
    }

    fn advance(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        let f = (-dt / self.tau).exp();
        self.shares *= f;
        self.shares_sq *= f;
        self.exposure = self.exposure * f + self.tau * (1.0 - f) / self.difficulty;
        self.at = self.at.max(now);
    }

    fn set_difficulty(&mut self, difficulty: f64, now: Instant) {
        self.advance(now);
        if difficulty > self.difficulty {
            // After a raise the past weighs as credited difficulty does: an era at a quarter
            // of the difficulty weighs a quarter. Without this, the first seconds at a tiny
            // start difficulty (huge exposure) would outweigh everything after, and any share
            // that arrived in another era than it was found in (pipelines, a new difficulty
            // applied to an old job) would bias the estimate for minutes.
            let f = self.difficulty / difficulty;
            self.shares *= f;
            self.shares_sq *= f * f;
            self.exposure *= f;
        }
        self.difficulty = difficulty;
    }

    fn add(&mut self, credited: f64, now: Instant) {
        self.advance(now);
        let w = credited / self.difficulty;
        self.shares += w;
        self.shares_sq += w * w;
    }
}

/// The effective number of shares behind a sum of weighted shares.
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
    rate: ShareRate,
    last_change: Instant,
    last_share: Option<Instant>,
    /// Shares credited at the current difficulty since the last change.
    shares_at_current: u32,
    /// The miner's own floor (its latest suggestion, within the bounds): vardiff never goes
    /// below it. A miner may ask for fewer shares, never for more than vardiff gives.
    floor: Difficulty,
}

impl Vardiff {
    /// A session that will mine at `difficulty` (clamped to the bounds; until `start`,
    /// nothing is measured).
    pub fn new(cfg: VardiffConfig, difficulty: Difficulty, now: Instant) -> Self {
        let tau = (cfg.target_interval.as_secs_f64() * DECAY_INTERVALS).max(1e-3);
        let mut v = Vardiff {
            cfg,
            rate: ShareRate::new(tau, difficulty.as_f64(), now),
            last_change: now,
            last_share: None,
            shares_at_current: 0,
            floor: cfg.min,
        };
        v.rate.difficulty = v.clamp(difficulty).as_f64();
        v
    }

    /// Within the configured bounds and not below the miner's floor.
    pub fn clamp(&self, d: Difficulty) -> Difficulty {
        let min = if self.floor > self.cfg.min {
            self.floor
        } else {
            self.cfg.min
        };
        if d < min {
            min
        } else if d > self.cfg.max {
            self.cfg.max
        } else {
            d
        }
    }

    /// The miner suggested `d` (`mining.suggest_difficulty`, `d=` in the password): it becomes
    /// the floor (within the configured bounds), replacing any earlier suggestion.
    pub fn set_floor(&mut self, d: Difficulty) {
        self.floor = self.cfg.min;
        self.floor = self.clamp(d);
    }

    /// Mining begins now at `difficulty` (the first job went out): the estimate starts here.
    pub fn start(&mut self, difficulty: Difficulty, now: Instant) {
        self.rate = ShareRate::new(self.rate.tau, difficulty.as_f64(), now);
        self.last_change = now;
        self.last_share = None;
        self.shares_at_current = 0;
    }

    /// A parked session resumes: the time it was away is neither work nor silence.
    pub fn resumed(&mut self, now: Instant) {
        self.rate.at = self.rate.at.max(now);
        self.last_change = now;
    }

    /// The difficulty changed to `difficulty` (by vardiff or the miner's request).
    pub fn changed(&mut self, difficulty: Difficulty, now: Instant) {
        self.rate.set_difficulty(difficulty.as_f64(), now);
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

    /// What the share rate asks for. A raise is judged on, and goes to, the estimate less one
    /// standard error (`1/sqrt(shares)`): a lucky run of shares cannot carry the difficulty
    /// past the ideal, and further raises refine from below. A cut counts one more share at
    /// the current difficulty (no share yet is not "no hashrate") and goes to that estimate; a
    /// silence caps it.
    fn retarget(&mut self, current: Difficulty, now: Instant) -> Option<Difficulty> {
        let target = self.cfg.target_interval.as_secs_f64();
        let d = current.as_f64();
        self.rate.advance(now);
        let ShareRate {
            shares,
            shares_sq,
            exposure,
            ..
        } = self.rate;
        if exposure <= 0.0 {
            return None;
        }
        let window_passed =
            now.saturating_duration_since(self.last_change) >= self.cfg.retarget_window;

        let n = samples(shares, shares_sq);
        let estimate = shares / exposure * target;
        let raise = estimate * (1.0 - 1.0 / n.sqrt().max(1.0));

        // One more share at the current difficulty: the session's rate is judged at least
        // that, so an unlucky gap is not taken for a slow miner.
        let mut cut = (shares + 1.0) / exposure * target;
        let quiet_since = self
            .last_share
            .map_or(self.last_change, |s| s.max(self.last_change));
        let silent = now.saturating_duration_since(quiet_since).as_secs_f64() / target;
        if silent >= SILENT_INTERVALS {
            cut = cut.min(d * 4.0 / silent);
        }

        let ratio = if raise > d * (1.0 + self.cfg.variance) {
            let enough = self.shares_at_current >= SHARES_BEFORE_NEXT_CHANGE || window_passed;
            (n >= RAISE_EVIDENCE && enough).then_some(raise / d)?
        } else if cut < d / (1.0 + self.cfg.variance) {
            // Judged with the extra share, but goes to what the shares say (at least one).
            let land = (shares.max(1.0) / exposure * target).min(cut);
            window_passed.then_some(land / d)?
        } else {
            return None;
        };
        let stepped = ratio.clamp(1.0 / MAX_CUT, MAX_RAISE) * d;
        let next = self.clamp(Difficulty::new(tidy(stepped)).ok()?);
        if next == current {
            return None;
        }
        self.changed(next, now);
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
        let d = Difficulty::new(8.0).unwrap();
        let mut v = Vardiff::new(cfg(), d, t0);
        // A share of difficulty 8 every 11 s for ten minutes: 10 % off the ideal.
        for i in 1..=55 {
            assert_eq!(v.on_share(d, d, t0 + Duration::from_secs(11 * i)), None);
        }
    }

    #[test]
    fn silent_sessions_are_eased_down_and_bounds_hold() {
        let t0 = Instant::now();
        let d = Difficulty::new(100.0).unwrap();
        let mut v = Vardiff::new(cfg(), d, t0);
        // No share in a retarget window: at most one share's worth of work was done.
        assert_eq!(v.on_tick(d, t0 + Duration::from_secs(29)), None);
        let n = v.on_tick(d, t0 + Duration::from_secs(40)).unwrap();
        assert!((25.0..30.0).contains(&n.as_f64()), "{n}");
        // Still nothing: down again a window later, never by more than x4.
        assert_eq!(v.on_tick(n, t0 + Duration::from_secs(60)), None);
        let n2 = v.on_tick(n, t0 + Duration::from_secs(71)).unwrap();
        assert!(
            (n.as_f64() / 16.0..n.as_f64() / 3.0).contains(&n2.as_f64()),
            "{n} -> {n2}"
        );
        let low = Difficulty::new(0.001).unwrap();
        let mut v = Vardiff::new(cfg(), low, t0);
        assert_eq!(v.on_tick(low, t0 + Duration::from_secs(200)), None);
    }

    #[test]
    fn a_silent_miner_is_eased_down_no_lower_than_its_own_floor() {
        let t0 = Instant::now();
        let d = Difficulty::new(100.0).unwrap();
        let mut v = Vardiff::new(cfg(), d, t0);
        v.set_floor(Difficulty::new(40.0).unwrap());
        let n = v.on_tick(d, t0 + Duration::from_secs(40)).unwrap();
        assert_eq!(n.as_f64(), 40.0, "cut to the floor, not to {n}");
        assert_eq!(v.on_tick(n, t0 + Duration::from_secs(200)), None);
        // A later, lower suggestion replaces the floor; the bounds still hold.
        v.set_floor(Difficulty::new(1e-9).unwrap());
        assert_eq!(v.clamp(Difficulty::new(1e-9).unwrap()), cfg().min);
        v.set_floor(Difficulty::new(1e12).unwrap());
        assert_eq!(v.clamp(Difficulty::new(1.0).unwrap()), cfg().max);
    }

    #[test]
    fn shares_at_an_old_difficulty_count_what_they_were_credited() {
        // 1 difficulty per second wants difficulty 10. A miner stuck at 0.1 sends ten shares
        // a second; counted as shares at the new difficulty they would look 100x too fast.
        let t0 = Instant::now();
        let old = Difficulty::new(0.1).unwrap();
        let mut v = Vardiff::new(cfg(), old, t0);
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
    fn time_parked_is_neither_work_nor_silence() {
        let t0 = Instant::now();
        let d = Difficulty::new(10.0).unwrap();
        let mut v = Vardiff::new(cfg(), d, t0);
        let mut t = t0;
        for _ in 0..60 {
            t += Duration::from_secs(10);
            assert_eq!(v.on_share(d, d, t), None);
        }
        // Away for nine minutes, then back: the estimate is where it was.
        let back = t + Duration::from_secs(540);
        v.resumed(back);
        assert_eq!(v.on_tick(d, back + Duration::from_secs(31)), None);
        assert_eq!(v.on_share(d, d, back + Duration::from_secs(35)), None);
    }

    #[test]
    fn tidy_values() {
        assert_eq!(tidy(123.4), 123.0);
        assert!((tidy(0.123456) - 0.123).abs() < 1e-12);
    }
}
