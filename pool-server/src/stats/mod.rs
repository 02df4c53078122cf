//! Hashrate from accepted shares: sliding windows (1 m, 5 m, 1 h) per worker, per account and
//! for the pool, and a per-minute history for charts.
//!
//! Hashrate is `sum(credited difficulty) * 2^32 / window`. Shares land in 5-second buckets, so
//! a window costs a sum over at most 720 numbers and memory per worker is fixed. Each bucket
//! also counts its shares: how sure a rate is depends on how many shares it was counted from,
//! not on their difficulty.
//!
//! Accounts (a worker name's part before the first dot) keep a series of their own, updated
//! with the worker's, so an account's numbers cost one lookup and never a walk over its
//! workers.

mod named;
mod series;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use protocol::account_of;
use serde::Serialize;

use named::Named;
use series::Series;
pub use series::{Counted, HistoryPoint, WINDOWS};

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

/// An account's series, and its workers online.
#[derive(Default)]
struct AccountStats {
    series: Series,
    accepted: u64,
    online: u32,
    last_share: Option<DateTime<Utc>>,
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

/// An account's live numbers: sums over its workers, from its own series.
#[derive(Debug, Clone, Serialize)]
pub struct AccountSnapshot {
    pub hashrate: BTreeMap<&'static str, f64>,
    /// Its workers with a session now.
    pub online: u32,
    /// Shares accepted since the pool started.
    pub accepted: u64,
    /// What each window was counted from, by [`WINDOWS`].
    #[serde(skip)]
    pub counted: [Counted; 3],
    /// When its series began (the first session or share of any of its workers in memory).
    #[serde(skip)]
    pub first: Option<DateTime<Utc>>,
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
    workers: Named<WorkerStats>,
    accounts: Named<AccountStats>,
    pool: Mutex<PoolStats>,
    /// Workers with at least one session, kept as sessions come and go so the pool's numbers
    /// never walk every worker.
    online: std::sync::atomic::AtomicUsize,
}

/// A worker's entry and its account's. Held by the session that keeps the worker online,
/// which [`Stats::prune`] never removes (it takes workers without a session and accounts
/// without a worker online), so a share costs no lookup by name.
pub struct WorkerTally {
    worker: std::sync::Arc<Mutex<WorkerStats>>,
    account: std::sync::Arc<Mutex<AccountStats>>,
}

/// One minute of accepted work from the rollups, to warm the windows at start.
#[derive(Debug, Clone)]
pub struct WarmMinute {
    /// `None` for the whole pool.
    pub worker: Option<String>,
    pub minute: DateTime<Utc>,
    pub difficulty: f64,
}

impl Stats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn accepted(&self, worker: &str, difficulty: f64, at: DateTime<Utc>) {
        self.accepted_on(&self.tally(worker), difficulty, at);
    }

    /// The entries a share of `worker` lands in, to hold while a session keeps the worker
    /// online.
    pub fn tally(&self, worker: &str) -> WorkerTally {
        WorkerTally {
            worker: self.workers.entry(worker),
            account: self.accounts.entry(account_of(worker)),
        }
    }

    /// [`Stats::accepted`] through a held tally: no lookup by name.
    pub fn accepted_on(&self, tally: &WorkerTally, difficulty: f64, at: DateTime<Utc>) {
        let now = at.timestamp();
        {
            let mut w = tally.worker.lock();
            w.series.add(now, 1, difficulty);
            w.accepted += 1;
            w.accepted_difficulty += difficulty;
            w.last_share = Some(at);
        }
        {
            let mut a = tally.account.lock();
            a.series.add(now, 1, difficulty);
            a.accepted += 1;
            a.last_share = Some(at);
        }
        let mut p = self.pool.lock();
        p.series.add(now, 1, difficulty);
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
            let a = self.accounts.entry(account_of(worker));
            let mut a = a.lock();
            a.online += 1;
            a.series.begin(at.timestamp());
        }
        w.sessions += 1;
        w.opened += 1;
        w.series.begin(at.timestamp());
    }

    pub fn session_closed(&self, worker: &str) {
        if let Some(w) = self.workers.get(worker) {
            let mut w = w.lock();
            if w.sessions == 1 {
                self.online
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(a) = self.accounts.get(account_of(worker)) {
                    let mut a = a.lock();
                    a.online = a.online.saturating_sub(1);
                }
            }
            w.sessions = w.sessions.saturating_sub(1);
        }
    }

    /// Seed the windows and the history with minutes of accepted work a previous run stored
    /// (the rollups), so a restart leaves no hole. Call before sessions start. A minute's
    /// shares are not stored, so a warmed window counts none (its interval is wide until
    /// shares arrive).
    pub fn warm(&self, minutes: &[WarmMinute]) {
        let mut sorted: Vec<&WarmMinute> = minutes.iter().collect();
        sorted.sort_by_key(|m| m.minute);
        for m in sorted {
            let at = m.minute.timestamp();
            match &m.worker {
                Some(name) => {
                    let w = self.workers.entry(name);
                    let mut w = w.lock();
                    w.series.add(at, 0, m.difficulty);
                    w.last_share = Some(w.last_share.map_or(m.minute, |l| l.max(m.minute)));
                    let a = self.accounts.entry(account_of(name));
                    let mut a = a.lock();
                    a.series.add(at, 0, m.difficulty);
                    a.last_share = Some(a.last_share.map_or(m.minute, |l| l.max(m.minute)));
                }
                None => self.pool.lock().series.add(at, 0, m.difficulty),
            }
        }
    }

    fn snapshot_of(name: &str, w: &WorkerStats, now: i64) -> WorkerSnapshot {
        WorkerSnapshot {
            name: name.to_owned(),
            hashrate: w.series.windows(now),
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
        Some((w.series.all_counted(now.timestamp()), w.series.first()))
    }

    /// An account's live numbers, summed over its workers as they were recorded.
    pub fn account(&self, name: &str, now: DateTime<Utc>) -> Option<AccountSnapshot> {
        let a = self.accounts.get(name)?;
        let a = a.lock();
        let now = now.timestamp();
        Some(AccountSnapshot {
            hashrate: a.series.windows(now),
            online: a.online,
            accepted: a.accepted,
            counted: a.series.all_counted(now),
            first: a.series.first(),
        })
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
            w.series.history(now.timestamp()),
        ))
    }

    pub fn pool(&self, now: DateTime<Utc>) -> (PoolSnapshot, Vec<HistoryPoint>) {
        let active = self.online.load(std::sync::atomic::Ordering::Relaxed);
        let p = self.pool.lock();
        (
            PoolSnapshot {
                hashrate: p.series.windows(now.timestamp()),
                accepted: p.accepted,
                rejected: p.rejected,
                workers: active,
            },
            p.series.history(now.timestamp()),
        )
    }

    /// Forget workers with no session and no share for an hour (their series go too).
    pub fn prune(&self, now: DateTime<Utc>) -> Vec<String> {
        let cutoff = now - chrono::Duration::hours(1);
        let gone = self
            .workers
            .remove_where(|w| w.sessions == 0 && w.last_share.is_none_or(|t| t < cutoff));
        self.accounts
            .remove_where(|a| a.online == 0 && a.last_share.is_none_or(|t| t < cutoff));
        gone
    }
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
    fn an_account_counts_its_workers_shares_and_sessions() {
        let s = Stats::new();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        s.session_opened("bob.a", t0);
        s.session_opened("bob.a", t0);
        s.session_opened("bob.b", t0);
        s.session_opened("bobby", t0);
        for i in 0..10 {
            let at = t0 + chrono::Duration::seconds(i);
            s.accepted("bob.a", 1.0, at);
            s.accepted("bob.b", 4.0, at);
        }
        let now = t0 + chrono::Duration::seconds(10);
        let a = s.account("bob", now).unwrap();
        assert_eq!(a.online, 2);
        assert_eq!(a.accepted, 20);
        assert_eq!(a.counted[0].shares, 20);
        assert_eq!(a.counted[0].work, 50.0);
        assert_eq!(a.counted[0].seconds, 10);
        s.session_closed("bob.a");
        assert_eq!(
            s.account("bob", now).unwrap().online,
            2,
            "bob.a has another"
        );
        s.session_closed("bob.a");
        s.session_closed("bob.b");
        assert_eq!(s.account("bob", now).unwrap().online, 0);
        // Gone with its workers, an hour after its last share.
        s.prune(now + chrono::Duration::seconds(4000));
        assert!(s.account("bob", now).is_none());
        assert_eq!(s.account("bobby", now).unwrap().online, 1);
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
    use std::sync::Arc;

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
