//! One worker, watched: is it still hashing, at the rate it used to, with few rejects?
//!
//! A worker's shares are a Poisson process (see [`super::poisson`]), so each rule asks how
//! unlikely what it saw would be for a healthy worker, and fires only past a probability
//! that keeps false alarms under [`WatchConfig::false_alarms_per_day`] per worker and rule.
//! A fixed "no share for 10 minutes" is wrong both ways: a fast rig is dead long before,
//! and a slow one sends a share every hour or so and would be reported dead ten times a day.
//!
//! - **Baseline**: the worker's own rate, difficulty per second, averaged over the time it
//!   has been connected (exponentially, over [`WatchConfig::baseline`], 24 h by default, or
//!   over its last few dozen shares for a worker too slow to send them in that time),
//!   and taken at its lower confidence bound from the shares counted: a young worker's
//!   baseline is uncertain, and the rules wait for more evidence rather than guess.
//!   Expected shares follow the difficulty the worker mines at now, so a vardiff retarget
//!   never looks like a change of hashrate.
//! - **Offline**: no session for [`WatchConfig::disconnect_grace`] (a miner that stopped
//!   closes its connection), or connected but silent for longer than its baseline makes
//!   plausible: `expected shares since the last one >= ln(shares a day / false alarms a day)`.
//! - **Hashrate dropped**: Page's CUSUM for a Poisson rate, baseline against
//!   [`WatchConfig::drop_fraction`] of it: each share adds `ln f`, each second adds
//!   `(1 - f) x expected rate`; it fires at the same `ln(shares a day / false alarms a day)`.
//!   The time it takes is that threshold over the information a second carries (a worker at
//!   one share per 3 s, halved, is found in about 6 minutes). It resolves by the same test
//!   the other way (the rate is back to at least halfway), or after
//!   [`WatchConfig::rebaseline_after`] at the new rate, which becomes the baseline.
//! - **Rejects high**: the share of rejected shares over about an hour, fired when even the
//!   lower end of its confidence interval is above [`WatchConfig::max_reject_ratio`].

use std::time::Duration;

use super::poisson;

/// The rules' settings; [`Default`] is what the pool runs with unless told otherwise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WatchConfig {
    /// Hashrate dropped: below this fraction of the baseline.
    pub drop_fraction: f64,
    /// False alarms allowed per worker-day, for each rule.
    pub false_alarms_per_day: f64,
    /// A worker with no session this long is offline.
    pub disconnect_grace: Duration,
    /// How far back the baseline looks (the time constant of its average).
    pub baseline: Duration,
    /// Shares the baseline must count before the silence and drop rules judge by it.
    pub min_baseline_shares: f64,
    /// Rejects high: above this fraction of shares.
    pub max_reject_ratio: f64,
    /// How far back the reject ratio looks.
    pub reject_window: Duration,
    /// A drop that lasts this long becomes the new baseline (and resolves).
    pub rebaseline_after: Duration,
    /// The pool-wide rules fire once their condition has held this long.
    pub pool_hold: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            drop_fraction: 0.5,
            false_alarms_per_day: 1e-4,
            disconnect_grace: Duration::from_secs(120),
            baseline: Duration::from_secs(24 * 3600),
            min_baseline_shares: 30.0,
            max_reject_ratio: 0.1,
            reject_window: Duration::from_secs(3600),
            rebaseline_after: Duration::from_secs(24 * 3600),
            pool_hold: Duration::from_secs(120),
        }
    }
}

/// What one worker did since the last look.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Observation {
    /// Shares accepted since the last observation, and the difficulty they were credited.
    pub accepted: u64,
    pub accepted_difficulty: f64,
    /// Shares rejected since the last observation.
    pub rejected: u64,
    /// The share difficulty it mines at now.
    pub difficulty: f64,
    /// Its sessions open now.
    pub sessions: u32,
}

/// Why a worker counts as offline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OfflineCause {
    /// No session for the grace period.
    Disconnected,
    /// Connected, but no share while this many were expected.
    Silent { expected_shares: f64 },
}

/// A rule that changed state. Rates are hashes per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    Offline(OfflineCause),
    /// Resolves [`Change::Offline`].
    Online,
    /// `recent`: the rate since the drop began (where the evidence for it started).
    HashrateDropped {
        baseline: f64,
        recent: f64,
    },
    /// Resolves [`Change::HashrateDropped`]; `rebaselined` when the lower rate lasted long
    /// enough to become the baseline.
    HashrateRestored {
        baseline: f64,
        recent: f64,
        rebaselined: bool,
    },
    RejectsHigh {
        ratio: f64,
    },
    /// Resolves [`Change::RejectsHigh`].
    RejectsNormal {
        ratio: f64,
    },
}

/// An exponentially weighted sum of difficulty, shares and time.
#[derive(Debug, Clone, Copy, Default)]
struct Average {
    difficulty: f64,
    shares: f64,
    seconds: f64,
}

impl Average {
    fn add(&mut self, decay: f64, difficulty: f64, shares: u64, seconds: f64) {
        self.difficulty = self.difficulty * decay + difficulty;
        self.shares = self.shares * decay + shares as f64;
        self.seconds = self.seconds * decay + seconds;
    }

    /// Difficulty per second.
    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.difficulty / self.seconds
        } else {
            0.0
        }
    }
}

/// A firing hashrate drop: the baseline it is judged against, and the way back.
#[derive(Debug, Clone, Copy)]
struct Dropped {
    baseline: f64,
    seconds: f64,
    recovery: f64,
}

const TWO_32: f64 = 4_294_967_296.0;
/// The confidence the baseline is taken at (its lower bound): 99 %, `z` of a 1 % tail.
const BASELINE_Z: f64 = 2.326_347_874;
/// How far back the "recent" rate of a restored hashrate looks.
const RECENT: f64 = 600.0;

/// One worker's rules.
#[derive(Debug, Clone)]
pub struct Watch {
    cfg: WatchConfig,
    baseline: Average,
    recent: Average,
    rejects: (f64, f64),
    expected_since_share: f64,
    disconnected_for: f64,
    offline: Option<OfflineCause>,
    cusum: f64,
    /// Difficulty and seconds since the CUSUM last stood at zero (where a drop began).
    since_change: (f64, f64),
    dropped: Option<Dropped>,
    rejects_high: bool,
}

/// What the rules know of a worker now, for the API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WatchStatus {
    /// Baseline hashrate and its lower confidence bound (`None` while learning).
    pub baseline: Option<(f64, f64)>,
    pub offline: Option<OfflineCause>,
    pub dropped: bool,
    pub rejects_high: bool,
}

impl Watch {
    pub fn new(cfg: WatchConfig) -> Watch {
        Watch {
            cfg,
            baseline: Average::default(),
            recent: Average::default(),
            rejects: (0.0, 0.0),
            expected_since_share: 0.0,
            disconnected_for: 0.0,
            offline: None,
            cusum: 0.0,
            since_change: (0.0, 0.0),
            dropped: None,
            rejects_high: false,
        }
    }

    pub fn status(&self) -> WatchStatus {
        WatchStatus {
            baseline: self
                .low_baseline()
                .map(|low| (self.baseline.rate() * TWO_32, low * TWO_32)),
            offline: self.offline,
            dropped: self.dropped.is_some(),
            rejects_high: self.rejects_high,
        }
    }

    /// The baseline's lower confidence bound, difficulty per second, once it has counted
    /// enough shares.
    fn low_baseline(&self) -> Option<f64> {
        let n = self.baseline.shares;
        (n >= self.cfg.min_baseline_shares)
            .then(|| self.baseline.rate() * poisson::lower_bound_fast(n, BASELINE_Z) / n)
    }

    /// The evidence a rule needs before it fires, for a worker expected to send
    /// `per_second` shares: `ln(shares a day / false alarms a day)`, and never less than a
    /// day's worth of false alarms at one share a day would allow.
    fn threshold(&self, per_second: f64) -> f64 {
        let fa = self.cfg.false_alarms_per_day.max(1e-12);
        ((per_second * 86_400.0).max(1.0) / fa).ln()
    }

    /// Take in `dt` of the worker's life; what changed.
    pub fn observe(&mut self, dt: Duration, o: &Observation) -> Vec<Change> {
        let t = dt.as_secs_f64();
        let mut changes = Vec::new();
        let connected = o.sessions > 0;
        self.disconnected_for = if connected {
            0.0
        } else {
            self.disconnected_for + t
        };
        self.recent
            .add((-t / RECENT).exp(), o.accepted_difficulty, o.accepted, t);
        self.rejects(t, o, &mut changes);
        // Back: a share from a silent worker, a session from a disconnected one.
        match self.offline {
            Some(OfflineCause::Silent { .. }) if o.accepted > 0 => self.back(&mut changes),
            Some(OfflineCause::Disconnected) if connected => self.back(&mut changes),
            _ => {}
        }
        if o.accepted > 0 {
            self.expected_since_share = 0.0;
        }
        if !connected {
            if self.offline.is_none()
                && self.disconnected_for >= self.cfg.disconnect_grace.as_secs_f64()
            {
                self.offline = Some(OfflineCause::Disconnected);
                changes.push(Change::Offline(OfflineCause::Disconnected));
            }
            return changes;
        }
        if self.offline.is_some() {
            return changes;
        }
        let low = self.low_baseline();
        if self.dropped.is_none() {
            // Over the configured time, or a slow worker's last few dozen shares if longer.
            let span = self.cfg.baseline.as_secs_f64().max(
                3.0 * self.cfg.min_baseline_shares * o.difficulty
                    / self.baseline.rate().max(1e-300),
            );
            let decay = (-t / span).exp();
            self.baseline
                .add(decay, o.accepted_difficulty, o.accepted, t);
        }
        let (Some(low), true) = (low, o.difficulty > 0.0) else {
            return changes;
        };
        let per_second = low / o.difficulty;
        let h = self.threshold(per_second);
        if o.accepted == 0 {
            self.expected_since_share += per_second * t;
            if self.expected_since_share >= h {
                let cause = OfflineCause::Silent {
                    expected_shares: self.expected_since_share,
                };
                self.offline = Some(cause);
                changes.push(Change::Offline(cause));
                return changes;
            }
        }
        self.hashrate(t, o, per_second, h, &mut changes);
        changes
    }

    fn back(&mut self, changes: &mut Vec<Change>) {
        self.offline = None;
        self.expected_since_share = 0.0;
        self.cusum = 0.0;
        changes.push(Change::Online);
    }

    /// The drop test while the rate holds, the recovery test while it is dropped.
    fn hashrate(
        &mut self,
        t: f64,
        o: &Observation,
        per_second: f64,
        h: f64,
        changes: &mut Vec<Change>,
    ) {
        let f = self.cfg.drop_fraction.clamp(1e-6, 0.999);
        let shares = o.accepted as f64;
        match &mut self.dropped {
            None => {
                self.cusum = (self.cusum + (1.0 - f) * per_second * t + shares * f.ln()).max(0.0);
                self.since_change = if self.cusum > 0.0 {
                    (
                        self.since_change.0 + o.accepted_difficulty,
                        self.since_change.1 + t,
                    )
                } else {
                    (0.0, 0.0)
                };
                if self.cusum >= h {
                    let baseline = self.baseline.rate();
                    let (work, seconds) = self.since_change;
                    self.dropped = Some(Dropped {
                        baseline,
                        seconds: 0.0,
                        recovery: 0.0,
                    });
                    changes.push(Change::HashrateDropped {
                        baseline: baseline * TWO_32,
                        recent: work / seconds.max(t) * TWO_32,
                    });
                }
            }
            Some(d) => {
                // Dropped (rate f) against back at least halfway (rate r), from the frozen
                // baseline's expected rate.
                let r = (1.0 + f) / 2.0;
                let expected = d.baseline / o.difficulty;
                d.recovery = (d.recovery + shares * (r / f).ln() - (r - f) * expected * t).max(0.0);
                d.seconds += t;
                let recovered = d.recovery >= h;
                let rebaselined =
                    !recovered && d.seconds >= self.cfg.rebaseline_after.as_secs_f64();
                if recovered || rebaselined {
                    let baseline = d.baseline;
                    self.dropped = None;
                    self.cusum = 0.0;
                    if rebaselined {
                        self.baseline = self.recent;
                    }
                    changes.push(Change::HashrateRestored {
                        baseline: baseline * TWO_32,
                        recent: self.recent.rate() * TWO_32,
                        rebaselined,
                    });
                }
            }
        }
    }

    fn rejects(&mut self, t: f64, o: &Observation, changes: &mut Vec<Change>) {
        let decay = (-t / self.cfg.reject_window.as_secs_f64()).exp();
        let (a, r) = self.rejects;
        self.rejects = (a * decay + o.accepted as f64, r * decay + o.rejected as f64);
        let (a, r) = self.rejects;
        let n = a + r;
        if n <= 0.0 {
            return;
        }
        let ratio = r / n;
        if !self.rejects_high {
            // Judged at every look: a tail small enough for a day of looks.
            let (low, _) = poisson::proportion_interval(r, n, 1e-9);
            if low > self.cfg.max_reject_ratio {
                self.rejects_high = true;
                changes.push(Change::RejectsHigh { ratio });
            }
        } else {
            let (_, high) = poisson::proportion_interval(r, n, 0.01);
            if high < self.cfg.max_reject_ratio {
                self.rejects_high = false;
                changes.push(Change::RejectsNormal { ratio });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOOK: Duration = Duration::from_secs(5);

    /// A worker fed exactly its expected shares (no randomness), `per_second` shares a second
    /// at `difficulty`.
    struct Feed {
        carry: f64,
    }

    impl Feed {
        fn look(&mut self, per_second: f64, difficulty: f64, sessions: u32) -> Observation {
            self.carry += per_second * LOOK.as_secs_f64();
            let n = self.carry.floor();
            self.carry -= n;
            Observation {
                accepted: n as u64,
                accepted_difficulty: n * difficulty,
                rejected: 0,
                difficulty,
                sessions,
            }
        }
    }

    /// A watch that has learnt a worker of 1/3 share a second at difficulty 1 for a day.
    fn learnt() -> (Watch, Feed) {
        let mut w = Watch::new(WatchConfig::default());
        let mut f = Feed { carry: 0.0 };
        for _ in 0..(86_400 / 5) {
            assert_eq!(w.observe(LOOK, &f.look(1.0 / 3.0, 1.0, 1)), vec![]);
        }
        (w, f)
    }

    /// Looks until a change; the seconds it took and the change.
    fn until_change(
        w: &mut Watch,
        mut o: impl FnMut() -> Observation,
        limit: u64,
    ) -> Option<(u64, Change)> {
        for i in 1..=limit / 5 {
            if let Some(c) = w.observe(LOOK, &o()).first() {
                return Some((i * 5, *c));
            }
        }
        None
    }

    #[test]
    fn a_steady_worker_is_never_reported() {
        let (mut w, mut f) = learnt();
        assert_eq!(
            until_change(&mut w, || f.look(1.0 / 3.0, 1.0, 1), 7 * 86_400),
            None
        );
        let s = w.status();
        let (rate, low) = s.baseline.unwrap();
        assert!((rate / TWO_32 - 1.0 / 3.0).abs() < 1e-3, "{rate}");
        assert!(low < rate && low > 0.9 * rate, "{low} of {rate}");
    }

    #[test]
    fn a_vardiff_retarget_is_not_a_change_of_hashrate() {
        let (mut w, mut f) = learnt();
        // The same hashrate at half the difficulty: twice the shares, each worth half.
        assert_eq!(
            until_change(&mut w, || f.look(2.0 / 3.0, 0.5, 1), 86_400),
            None
        );
    }

    #[test]
    fn a_worker_that_disconnects_is_offline_after_the_grace_and_back_when_it_returns() {
        let (mut w, mut f) = learnt();
        let (secs, c) = until_change(&mut w, || f.look(0.0, 1.0, 0), 3600).unwrap();
        assert_eq!(c, Change::Offline(OfflineCause::Disconnected));
        assert_eq!(secs, 120);
        // Once: it stays offline without saying so again.
        assert_eq!(until_change(&mut w, || f.look(0.0, 1.0, 0), 3600), None);
        assert_eq!(w.observe(LOOK, &f.look(0.0, 1.0, 1)), vec![Change::Online]);
    }

    #[test]
    fn a_connected_worker_gone_silent_is_offline_when_silence_is_implausible() {
        let (mut w, mut f) = learnt();
        let (secs, c) = until_change(&mut w, || f.look(0.0, 1.0, 1), 3600).unwrap();
        let Change::Offline(OfflineCause::Silent { expected_shares }) = c else {
            panic!("{c:?}");
        };
        // ln(28,800 shares a day / 1e-4 false alarms a day) = 19.5 expected shares, at the
        // baseline's lower bound: about a minute at one share per 3 s.
        assert!((19.4..20.0).contains(&expected_shares), "{expected_shares}");
        assert!((55..=75).contains(&secs), "{secs}");
        let back = w.observe(LOOK, &f.look(1.0, 1.0, 1));
        assert_eq!(back, vec![Change::Online]);
    }

    #[test]
    fn a_slow_worker_is_given_the_time_its_rate_needs() {
        // One share an hour: silence of hours is normal; only disconnecting is news soon.
        let mut w = Watch::new(WatchConfig::default());
        let mut f = Feed { carry: 0.0 };
        for _ in 0..(10 * 86_400 / 5) {
            assert_eq!(w.observe(LOOK, &f.look(1.0 / 3600.0, 1.0, 1)), vec![]);
        }
        let (secs, _) = until_change(&mut w, || f.look(0.0, 1.0, 1), 30 * 86_400).unwrap();
        assert!(secs > 10 * 3600, "{secs}");
    }

    #[test]
    fn a_halved_hashrate_is_found_within_minutes_and_its_return_resolves_it() {
        let (mut w, mut f) = learnt();
        // Halved, and vardiff halves the difficulty: the same share count, half the work.
        let (secs, c) = until_change(&mut w, || f.look(1.0 / 3.0, 0.5, 1), 3600).unwrap();
        let Change::HashrateDropped { baseline, recent } = c else {
            panic!("{c:?}");
        };
        assert!(secs <= 15 * 60, "{secs}");
        assert!((baseline / TWO_32 - 1.0 / 3.0).abs() < 1e-2, "{baseline}");
        assert!(recent < 0.8 * baseline, "{recent} of {baseline}");
        let (_, c) = until_change(&mut w, || f.look(1.0 / 3.0, 1.0, 1), 3600).unwrap();
        assert!(
            matches!(
                c,
                Change::HashrateRestored {
                    rebaselined: false,
                    ..
                }
            ),
            "{c:?}"
        );
    }

    #[test]
    fn a_drop_that_lasts_a_day_becomes_the_baseline() {
        let (mut w, mut f) = learnt();
        until_change(&mut w, || f.look(1.0 / 6.0, 1.0, 1), 3600).unwrap();
        let (secs, c) = until_change(&mut w, || f.look(1.0 / 6.0, 1.0, 1), 2 * 86_400).unwrap();
        assert!(
            matches!(
                c,
                Change::HashrateRestored {
                    rebaselined: true,
                    ..
                }
            ),
            "{c:?}"
        );
        assert!(secs >= 86_000, "{secs}");
        assert_eq!(
            until_change(&mut w, || f.look(1.0 / 6.0, 1.0, 1), 86_400),
            None
        );
    }

    #[test]
    fn a_young_worker_is_not_judged_by_silence_until_it_has_a_baseline() {
        let mut w = Watch::new(WatchConfig::default());
        let mut f = Feed { carry: 0.0 };
        for _ in 0..10 {
            w.observe(LOOK, &f.look(1.0 / 3.0, 1.0, 1));
        }
        assert_eq!(w.status().baseline, None);
        assert_eq!(until_change(&mut w, || f.look(0.0, 1.0, 1), 3600), None);
    }

    #[test]
    fn many_rejects_fire_and_few_resolve() {
        let (mut w, mut f) = learnt();
        let mut looks = 0;
        let c = loop {
            looks += 1;
            let mut o = f.look(1.0 / 3.0, 1.0, 1);
            o.rejected = o.accepted;
            if let Some(c) = w.observe(LOOK, &o).into_iter().next() {
                break c;
            }
            assert!(looks < 720, "never fired");
        };
        assert!(
            matches!(c, Change::RejectsHigh { ratio } if ratio > 0.1),
            "{c:?}"
        );
        let (_, c) = until_change(&mut w, || f.look(1.0 / 3.0, 1.0, 1), 4 * 3600).unwrap();
        assert!(
            matches!(c, Change::RejectsNormal { ratio } if ratio < 0.1),
            "{c:?}"
        );
    }
}
