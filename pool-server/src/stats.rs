//! Hashrate from accepted shares: sliding windows (1 m, 5 m, 1 h) per worker and for the pool,
//! and a per-minute history for charts.
//!
//! Hashrate is `sum(credited difficulty) * 2^32 / window`. Shares land in 5-second buckets, so
//! a window costs a sum over at most 720 numbers and memory per worker is fixed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::{Mutex, RwLock};
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

    /// The work counted in `window` (a sum of difficulties) and the seconds it covers.
    fn counted(&self, now: i64, window: Duration) -> (f64, i64) {
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
        // The time the sum covers: from that boundary, or from when the series began (its
        // first session or share) when that is later.
        let begun = self.first.map_or(from, |f| f.max(from));
        (sum, (now - begun).clamp(1, w))
    }

    fn hashrate(&self, now: i64, window: Duration) -> Hashrate {
        let (sum, span) = self.counted(now, window);
        Hashrate::from_shares(sum, Duration::from_secs(span as u64))
    }
}

#[derive(Default)]
struct WorkerStats {
    series: Series,
    accepted: u64,
    /// The difficulty of every accepted share, summed.
    accepted_difficulty: f64,
    rejected: BTreeMap<&'static str, u64>,
    last_share: Option<DateTime<Utc>>,
    difficulty: f64,
    sessions: u32,
    /// Sessions opened since the pool started (a worker that came and went between two
    /// looks of the alert rules still counts as seen).
    opened: u64,
}

/// Workers each behind a lock of their own: a session touches only its worker's (and the
/// pool's), and a walk over every worker (an API page, a metrics scrape) holds the map only
/// long enough to copy the handles, never across the whole walk.
#[derive(Default)]
struct Workers {
    map: RwLock<HashMap<String, Arc<Mutex<WorkerStats>>>>,
}

impl Workers {
    fn get(&self, name: &str) -> Option<Arc<Mutex<WorkerStats>>> {
        self.map.read().get(name).cloned()
    }

    fn entry(&self, name: &str) -> Arc<Mutex<WorkerStats>> {
        if let Some(w) = self.get(name) {
            return w;
        }
        self.map.write().entry(name.to_owned()).or_default().clone()
    }

    /// Handles to every worker, sorted by name.
    fn all(&self) -> Vec<(String, Arc<Mutex<WorkerStats>>)> {
        let mut v: Vec<_> = self
            .map
            .read()
            .iter()
            .map(|(n, w)| (n.clone(), w.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

#[derive(Default)]
struct PoolStats {
    series: Series,
    accepted: u64,
    rejected: u64,
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

/// A worker's live numbers without its name or per-reason counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerNumbers {
    /// By [`WINDOWS`].
    pub hashrate: [f64; 3],
    pub accepted: u64,
    /// The difficulty of its accepted shares, summed since the pool started.
    pub accepted_difficulty: f64,
    pub rejected: u64,
    pub difficulty: f64,
    pub sessions: u32,
    /// Sessions opened since the pool started.
    pub opened: u64,
    pub last_share: Option<DateTime<Utc>>,
}

/// What one window of a worker's hashrate was counted from.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Counted {
    /// The difficulty of the shares counted, summed.
    pub work: f64,
    /// The seconds they cover (shorter than the window for a young worker).
    pub seconds: u64,
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
    workers: Workers,
    pool: Mutex<PoolStats>,
    /// Workers with at least one session, kept as sessions come and go so the pool's numbers
    /// never walk every worker.
    online: std::sync::atomic::AtomicUsize,
}

/// One minute of accepted work from the rollups, to warm the windows at start.
#[derive(Debug, Clone)]
pub struct WarmMinute {
    /// `None` for the whole pool.
    pub worker: Option<String>,
    pub minute: DateTime<Utc>,
    pub difficulty: f64,
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
        {
            let w = self.workers.entry(worker);
            let mut w = w.lock();
            w.series.add(now, difficulty);
            w.accepted += 1;
            w.accepted_difficulty += difficulty;
            w.last_share = Some(at);
        }
        let mut p = self.pool.lock();
        p.series.add(now, difficulty);
        p.accepted += 1;
    }

    pub fn rejected(&self, worker: &str, reason: &'static str) {
        *self
            .workers
            .entry(worker)
            .lock()
            .rejected
            .entry(reason)
            .or_default() += 1;
        self.pool.lock().rejected += 1;
    }

    pub fn set_difficulty(&self, worker: &str, difficulty: f64) {
        self.workers.entry(worker).lock().difficulty = difficulty;
    }

    /// A session began mining for `worker`: its hashrate counts time from now on, not from
    /// its first share (which would read high for a young worker).
    pub fn session_opened(&self, worker: &str, at: DateTime<Utc>) {
        let w = self.workers.entry(worker);
        let mut w = w.lock();
        if w.sessions == 0 {
            self.online
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        w.sessions += 1;
        w.opened += 1;
        w.series.first.get_or_insert(at.timestamp());
    }

    pub fn session_closed(&self, worker: &str) {
        if let Some(w) = self.workers.get(worker) {
            let mut w = w.lock();
            if w.sessions == 1 {
                self.online
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            w.sessions = w.sessions.saturating_sub(1);
        }
    }

    /// Seed the windows and the history with minutes of accepted work a previous run stored
    /// (the rollups), so a restart leaves no hole. Call before sessions start.
    pub fn warm(&self, minutes: &[WarmMinute]) {
        let mut sorted: Vec<&WarmMinute> = minutes.iter().collect();
        sorted.sort_by_key(|m| m.minute);
        for m in sorted {
            let at = m.minute.timestamp();
            match &m.worker {
                Some(name) => {
                    let w = self.workers.entry(name);
                    let mut w = w.lock();
                    w.series.add(at, m.difficulty);
                    w.last_share = Some(w.last_share.map_or(m.minute, |l| l.max(m.minute)));
                }
                None => self.pool.lock().series.add(at, m.difficulty),
            }
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

    /// What each window of `name`'s hashrate was counted from (by [`WINDOWS`]), and when its
    /// series began (its first session or share in memory).
    pub fn counted(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Option<([Counted; 3], Option<DateTime<Utc>>)> {
        let w = self.workers.get(name)?;
        let w = w.lock();
        let now = now.timestamp();
        let counted = WINDOWS.map(|(_, window)| {
            let (work, span) = w.series.counted(now, window);
            Counted {
                work,
                seconds: span as u64,
            }
        });
        let first = w.series.first.and_then(|f| DateTime::from_timestamp(f, 0));
        Some((counted, first))
    }

    /// Every worker's numbers in name order without allocating per worker (the worker
    /// directory's walk over possibly hundreds of thousands); hashrates by [`WINDOWS`].
    pub fn for_each_worker_numbers(
        &self,
        now: DateTime<Utc>,
        mut f: impl FnMut(String, WorkerNumbers),
    ) {
        let now = now.timestamp();
        for (name, w) in self.workers.all() {
            let n = {
                let w = w.lock();
                WorkerNumbers {
                    hashrate: WINDOWS.map(|(_, window)| w.series.hashrate(now, window).0),
                    accepted: w.accepted,
                    accepted_difficulty: w.accepted_difficulty,
                    rejected: w.rejected.values().sum(),
                    difficulty: w.difficulty,
                    sessions: w.sessions,
                    opened: w.opened,
                    last_share: w.last_share,
                }
            };
            f(name, n);
        }
    }

    /// Every worker's numbers in name order, each taken under its own lock only: sessions
    /// keep recording (and `f` may record too) while the walk goes on.
    pub fn for_each_worker(&self, now: DateTime<Utc>, mut f: impl FnMut(WorkerSnapshot)) {
        for (name, w) in self.workers.all() {
            let snap = Self::snapshot_of(&name, &w.lock(), now.timestamp());
            f(snap);
        }
    }

    pub fn workers(&self, now: DateTime<Utc>) -> Vec<WorkerSnapshot> {
        let mut v = Vec::new();
        self.for_each_worker(now, |w| v.push(w));
        v
    }

    /// One worker's live numbers (without its history).
    pub fn snapshot(&self, name: &str, now: DateTime<Utc>) -> Option<WorkerSnapshot> {
        let w = self.workers.get(name)?;
        let w = w.lock();
        Some(Self::snapshot_of(name, &w, now.timestamp()))
    }

    pub fn worker(
        &self,
        name: &str,
        now: DateTime<Utc>,
    ) -> Option<(WorkerSnapshot, Vec<HistoryPoint>)> {
        let w = self.workers.get(name)?;
        let w = w.lock();
        Some((
            Self::snapshot_of(name, &w, now.timestamp()),
            history(&w.series, now.timestamp()),
        ))
    }

    pub fn pool(&self, now: DateTime<Utc>) -> (PoolSnapshot, Vec<HistoryPoint>) {
        let active = self.online.load(std::sync::atomic::Ordering::Relaxed);
        let p = self.pool.lock();
        (
            PoolSnapshot {
                hashrate: windows(&p.series, now.timestamp()),
                accepted: p.accepted,
                rejected: p.rejected,
                workers: active,
            },
            history(&p.series, now.timestamp()),
        )
    }

    /// Forget workers with no session and no share for an hour (their series go too).
    pub fn prune(&self, now: DateTime<Utc>) -> Vec<String> {
        let cutoff = now - chrono::Duration::hours(1);
        let idle = |w: &WorkerStats| w.sessions == 0 && w.last_share.is_none_or(|t| t < cutoff);
        let mut map = self.workers.map.write();
        let gone: Vec<String> = map
            .iter()
            .filter(|(_, w)| idle(&w.lock()))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &gone {
            map.remove(n);
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

#[cfg(test)]
mod lock_tests {
    use super::*;

    /// A walk over every worker (an API page, a metrics scrape) holds no lock a session
    /// needs: a session records shares, even for a worker new to the pool, from inside the
    /// walk. (With one mutex over all workers this deadlocked.)
    #[test]
    fn a_walk_over_every_worker_never_blocks_a_session() {
        let s = Arc::new(Stats::new());
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        for i in 0..1000 {
            s.accepted(&format!("w{i:04}"), 1.0, t0);
        }
        let (done, finished) = std::sync::mpsc::channel();
        let walker = s.clone();
        std::thread::spawn(move || {
            let mut seen = 0;
            walker.for_each_worker(t0, |w| {
                seen += 1;
                walker.accepted(&w.name, 1.0, t0);
                walker.accepted(&format!("new{seen}"), 1.0, t0);
                walker.rejected(&w.name, "stale");
                let _ = walker.pool(t0);
            });
            done.send(seen).unwrap();
        });
        let seen = finished
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the walk finished while sessions recorded");
        assert_eq!(seen, 1000);
        assert_eq!(s.workers(t0).len(), 2000);
        assert_eq!(s.pool(t0).0.accepted, 3000);
    }
}
