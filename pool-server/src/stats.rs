//! Hashrate from accepted shares: sliding windows (1 m, 5 m, 1 h) per worker and for the pool,
//! and a per-minute history for charts.
//!
//! Hashrate is `sum(credited difficulty) * 2^32 / window`. Shares land in 5-second buckets, so
//! a window costs a sum over at most 720 numbers and memory per worker is fixed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use protocol::Hashrate;
use serde::Serialize;

const BUCKET_SECS: i64 = 5;
const WINDOW_SECS: i64 = 3600;
const HISTORY_MINUTES: usize = 24 * 60;

pub const WINDOWS: [(&str, Duration); 3] = [
    ("1m", Duration::from_secs(60)),
    ("5m", Duration::from_secs(300)),
    ("1h", Duration::from_secs(3600)),
];

#[derive(Default)]
struct Series {
    /// (bucket start, difficulty sum), ascending, covering the last hour.
    buckets: VecDeque<(i64, f64)>,
    /// (minute start, difficulty sum), ascending, covering the last day.
    history: VecDeque<(i64, f64)>,
    first: Option<i64>,
}

impl Series {
    fn add(&mut self, now: i64, difficulty: f64) {
        self.first.get_or_insert(now);
        let b = now - now.rem_euclid(BUCKET_SECS);
        match self.buckets.back_mut() {
            Some((start, sum)) if *start == b => *sum += difficulty,
            _ => self.buckets.push_back((b, difficulty)),
        }
        let m = now - now.rem_euclid(60);
        match self.history.back_mut() {
            Some((start, sum)) if *start == m => *sum += difficulty,
            _ => self.history.push_back((m, difficulty)),
        }
        self.trim(now);
    }

    fn trim(&mut self, now: i64) {
        while self
            .buckets
            .front()
            .is_some_and(|(s, _)| *s <= now - WINDOW_SECS)
        {
            self.buckets.pop_front();
        }
        while self.history.len() > HISTORY_MINUTES {
            self.history.pop_front();
        }
    }

    fn hashrate(&self, now: i64, window: Duration) -> Hashrate {
        let w = window.as_secs() as i64;
        // The buckets inside the window start at its first bucket boundary.
        let lo = now - w;
        let from = lo - lo.rem_euclid(BUCKET_SECS) + BUCKET_SECS;
        let sum: f64 = self
            .buckets
            .iter()
            .rev()
            .take_while(|(s, _)| *s >= from)
            .fold(0.0, |acc, (_, d)| acc + d);
        // Divide by the time the sum covers: from that boundary, or from when the series
        // began (its first session or share) when that is later.
        let begun = self.first.map_or(from, |f| f.max(from));
        let span = (now - begun).clamp(1, w);
        Hashrate::from_shares(sum, Duration::from_secs(span as u64))
    }
}

#[derive(Default)]
struct WorkerStats {
    series: Series,
    accepted: u64,
    rejected: BTreeMap<&'static str, u64>,
    last_share: Option<DateTime<Utc>>,
    difficulty: f64,
    sessions: u32,
}

#[derive(Default)]
struct Inner {
    workers: HashMap<String, WorkerStats>,
    pool: Series,
    pool_accepted: u64,
    pool_rejected: u64,
}

/// A worker's live numbers.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerSnapshot {
    pub name: String,
    pub hashrate: BTreeMap<&'static str, f64>,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    pub difficulty: f64,
    pub sessions: u32,
    pub last_share: Option<DateTime<Utc>>,
}

/// One point of a hashrate chart.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct HistoryPoint {
    pub time: DateTime<Utc>,
    pub hashrate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolSnapshot {
    pub hashrate: BTreeMap<&'static str, f64>,
    pub accepted: u64,
    pub rejected: u64,
    pub workers: usize,
}

#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
}

fn windows(series: &Series, now: i64) -> BTreeMap<&'static str, f64> {
    WINDOWS
        .iter()
        .map(|(name, w)| (*name, series.hashrate(now, *w).0))
        .collect()
}

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn accepted(&self, worker: &str, difficulty: f64, at: DateTime<Utc>) {
        let now = at.timestamp();
        let mut g = self.inner.lock();
        let w = g.workers.entry(worker.to_owned()).or_default();
        w.series.add(now, difficulty);
        w.accepted += 1;
        w.last_share = Some(at);
        g.pool.add(now, difficulty);
        g.pool_accepted += 1;
    }

    pub fn rejected(&self, worker: &str, reason: &'static str) {
        let mut g = self.inner.lock();
        *g.workers
            .entry(worker.to_owned())
            .or_default()
            .rejected
            .entry(reason)
            .or_default() += 1;
        g.pool_rejected += 1;
    }

    pub fn set_difficulty(&self, worker: &str, difficulty: f64) {
        self.inner
            .lock()
            .workers
            .entry(worker.to_owned())
            .or_default()
            .difficulty = difficulty;
    }

    /// A session began mining for `worker`: its hashrate counts time from now on, not from
    /// its first share (which would read high for a young worker).
    pub fn session_opened(&self, worker: &str, at: DateTime<Utc>) {
        let mut g = self.inner.lock();
        let w = g.workers.entry(worker.to_owned()).or_default();
        w.sessions += 1;
        w.series.first.get_or_insert(at.timestamp());
    }

    pub fn session_closed(&self, worker: &str) {
        if let Some(w) = self.inner.lock().workers.get_mut(worker) {
            w.sessions = w.sessions.saturating_sub(1);
        }
    }

    fn snapshot_of(name: &str, w: &WorkerStats, now: i64) -> WorkerSnapshot {
        WorkerSnapshot {
            name: name.to_owned(),
            hashrate: windows(&w.series, now),
            accepted: w.accepted,
            rejected: w.rejected.values().sum(),
            rejected_by_reason: w.rejected.clone(),
            difficulty: w.difficulty,
            sessions: w.sessions,
            last_share: w.last_share,
        }
    }

    pub fn workers(&self, now: DateTime<Utc>) -> Vec<WorkerSnapshot> {
        let g = self.inner.lock();
        let mut v: Vec<_> = g
            .workers
            .iter()
            .map(|(n, w)| Self::snapshot_of(n, w, now.timestamp()))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn worker(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Option<(WorkerSnapshot, Vec<HistoryPoint>)> {
        let g = self.inner.lock();
        let w = g.workers.get(name)?;
        Some((
            Self::snapshot_of(name, w, now.timestamp()),
            history(&w.series, now.timestamp()),
        ))
    }

    pub fn pool(&self, now: DateTime<Utc>) -> (PoolSnapshot, Vec<HistoryPoint>) {
        let g = self.inner.lock();
        (
            PoolSnapshot {
                hashrate: windows(&g.pool, now.timestamp()),
                accepted: g.pool_accepted,
                rejected: g.pool_rejected,
                workers: g.workers.values().filter(|w| w.sessions > 0).count(),
            },
            history(&g.pool, now.timestamp()),
        )
    }

    /// Forget workers with no session and no share for an hour (their series go too).
    pub fn prune(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut g = self.inner.lock();
        let cutoff = now - chrono::Duration::hours(1);
        let gone: Vec<String> = g
            .workers
            .iter()
            .filter(|(_, w)| w.sessions == 0 && w.last_share.is_none_or(|t| t < cutoff))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &gone {
            g.workers.remove(n);
        }
        gone
    }
}

/// Per-minute points of complete minutes (the current, partial minute would read low).
fn history(series: &Series, now: i64) -> Vec<HistoryPoint> {
    let this_minute = now - now.rem_euclid(60);
    series
        .history
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_share_per_second_at_difficulty_one_is_2_to_the_32() {
        let s = Stats::new();
        let t0 = DateTime::from_timestamp(1_699_999_980, 0).unwrap(); // on a minute
        for i in 0..600 {
            s.accepted("a.rig", 1.0, t0 + chrono::Duration::seconds(i));
        }
        let now = t0 + chrono::Duration::seconds(599);
        let w = &s.workers(now)[0];
        // Minute 10 has just begun: nine complete minutes of history so far.
        let (_, partial) = s.worker("a.rig", now).unwrap();
        assert_eq!(partial.len(), 9);
        let now = t0 + chrono::Duration::seconds(600);
        let five = w.hashrate["5m"];
        assert!((five / 4_294_967_296.0 - 1.0).abs() < 0.02, "{five}");
        let one = w.hashrate["1m"];
        assert!((one / 4_294_967_296.0 - 1.0).abs() < 0.1, "{one}");
        // Ten minutes of data: the hour window divides by the time actually covered.
        assert!((w.hashrate["1h"] / 4_294_967_296.0 - 1.0).abs() < 0.02);
        let (_, hist) = s.worker("a.rig", now).unwrap();
        assert_eq!(hist.len(), 10);
    }

    #[test]
    fn a_young_worker_is_measured_from_its_first_session() {
        let s = Stats::new();
        let t0 = DateTime::from_timestamp(1_700_000_003, 0).unwrap();
        s.session_opened("w", t0);
        // Difficulty 1 every 2 s, the first share 2 s after the session opened.
        for i in 1..=20 {
            s.accepted("w", 1.0, t0 + chrono::Duration::seconds(2 * i));
        }
        let w = &s.workers(t0 + chrono::Duration::seconds(40))[0];
        for window in ["1m", "5m", "1h"] {
            let rate = w.hashrate[window] / 4_294_967_296.0;
            assert!((rate - 0.5).abs() < 0.01, "{window}: {rate}");
        }
    }

    #[test]
    fn silent_workers_decay_to_zero_and_are_pruned() {
        let s = Stats::new();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        s.accepted("w", 4.0, t0);
        let later = t0 + chrono::Duration::seconds(4000);
        assert_eq!(s.workers(later)[0].hashrate["1h"], 0.0);
        assert_eq!(s.prune(later), vec!["w".to_string()]);
        assert!(s.workers(later).is_empty());
    }
}
