//! One series of accepted work: 5-second buckets over the last hour (each with its work and
//! its count of shares) and per-minute sums over the last day. A worker, an account and the
//! pool each keep one; a window's hashrate is its work over the time it covers.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use protocol::Hashrate;
use serde::Serialize;

const BUCKET_SECS: i64 = 5;
const WINDOW_SECS: i64 = 3600;
const HISTORY_MINUTES: usize = 24 * 60;

/// The hashrate windows every series answers for.
pub const WINDOWS: [(&str, Duration); 3] = [
    ("1m", Duration::from_secs(60)),
    ("5m", Duration::from_secs(300)),
    ("1h", Duration::from_secs(3600)),
];

/// Five seconds of shares: 16 bytes, as many as a bare (start, sum) took.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Its start, seconds since the epoch (good until 2106).
    start: u32,
    shares: u32,
    difficulty: f64,
}

#[derive(Default)]
pub(super) struct Series {
    /// Ascending, covering the last hour.
    buckets: VecDeque<Bucket>,
    /// (minute start, difficulty sum), ascending, covering the last day.
    history: VecDeque<(i64, f64)>,
    first: Option<i64>,
}

impl Series {
    /// `shares` shares of `difficulty` in total, at `now`.
    pub(super) fn add(&mut self, now: i64, shares: u32, difficulty: f64) {
        self.first.get_or_insert(now);
        let b = (now - now.rem_euclid(BUCKET_SECS)).clamp(0, u32::MAX as i64) as u32;
        match self.buckets.back_mut() {
            Some(last) if last.start == b => {
                last.shares = last.shares.saturating_add(shares);
                last.difficulty += difficulty;
            }
            _ => self.buckets.push_back(Bucket {
                start: b,
                shares,
                difficulty,
            }),
        }
        let m = now - now.rem_euclid(60);
        match self.history.back_mut() {
            Some((start, sum)) if *start == m => *sum += difficulty,
            _ => self.history.push_back((m, difficulty)),
        }
        self.trim(now);
    }

    /// The series begins at `at` unless it began earlier (a session opened before any share).
    pub(super) fn begin(&mut self, at: i64) {
        self.first.get_or_insert(at);
    }

    /// Hashrate by window name.
    pub(super) fn windows(&self, now: i64) -> BTreeMap<&'static str, f64> {
        WINDOWS
            .iter()
            .map(|(name, w)| (*name, self.hashrate(now, *w).0))
            .collect()
    }

    /// Per-minute points of complete minutes (the current, partial minute would read low).
    pub(super) fn history(&self, now: i64) -> Vec<HistoryPoint> {
        let this_minute = now - now.rem_euclid(60);
        self.history
            .iter()
            .filter(|(m, _)| *m < this_minute)
            .filter_map(|(m, d)| {
                Some(HistoryPoint {
                    time: DateTime::from_timestamp(*m, 0)?,
                    hashrate: Hashrate::from_shares(*d, Duration::from_secs(60)).0,
                })
            })
            .collect()
    }

    fn trim(&mut self, now: i64) {
        while self
            .buckets
            .front()
            .is_some_and(|b| i64::from(b.start) <= now - WINDOW_SECS)
        {
            self.buckets.pop_front();
        }
        while self.history.len() > HISTORY_MINUTES {
            self.history.pop_front();
        }
    }

    /// What `window` counted: the work (a sum of difficulties), the shares, and the seconds
    /// they cover.
    pub(super) fn counted(&self, now: i64, window: Duration) -> Counted {
        let w = window.as_secs() as i64;
        // The buckets inside the window start at its first bucket boundary.
        let lo = now - w;
        let from = lo - lo.rem_euclid(BUCKET_SECS) + BUCKET_SECS;
        let (work, shares) = self
            .buckets
            .iter()
            .rev()
            .take_while(|b| i64::from(b.start) >= from)
            .fold((0.0, 0u64), |(work, shares), b| {
                (work + b.difficulty, shares + u64::from(b.shares))
            });
        // The time the sum covers: from that boundary, or from when the series began (its
        // first session or share) when that is later.
        let begun = self.first.map_or(from, |f| f.max(from));
        Counted {
            work,
            shares,
            seconds: (now - begun).clamp(1, w) as u64,
        }
    }

    pub(super) fn hashrate(&self, now: i64, window: Duration) -> Hashrate {
        let c = self.counted(now, window);
        Hashrate::from_shares(c.work, Duration::from_secs(c.seconds))
    }

    pub(super) fn all_counted(&self, now: i64) -> [Counted; 3] {
        WINDOWS.map(|(_, window)| self.counted(now, window))
    }

    pub(super) fn first(&self) -> Option<DateTime<Utc>> {
        self.first.and_then(|f| DateTime::from_timestamp(f, 0))
    }
}

/// What one window of a hashrate was counted from.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Counted {
    /// The difficulty of the shares counted, summed.
    pub work: f64,
    /// The shares counted.
    pub shares: u64,
    /// The seconds they cover (shorter than the window for a young worker).
    pub seconds: u64,
}

/// One point of a hashrate chart.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HistoryPoint {
    pub time: DateTime<Utc>,
    pub hashrate: f64,
}
