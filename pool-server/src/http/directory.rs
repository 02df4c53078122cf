//! The worker directory: every worker the pool knows, its live numbers (memory) merged with its
//! all-time totals (the database's `workers`), sorted by name, in one snapshot that
//! [`super::refreshed::Refreshed`] rebuilds at most every [`FRESH`].
//!
//! Why: with 200,000 workers, reading, merging and sorting them all took 1.3 s per request,
//! so a handful of addresses could hold every HTTP slot and the cores Stratum needs. Now a
//! request reads the snapshot; each view of it (a search, an order, grouped or not) is sorted
//! once per snapshot and kept (the last [`MAX_VIEWS`]), on the blocking pool and one at a
//! time, so whatever HTTP asks, Stratum keeps its threads and a page costs its rows.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use protocol::account_of;

use crate::stats::{Stats, WorkerNumbers};
use crate::store::{Backend, WorkerRow};

/// How long a snapshot is served as it is.
pub const FRESH: Duration = Duration::from_secs(2);
/// How long an older snapshot is still served while the next is built.
pub const STALE: Duration = Duration::from_secs(10);
/// Most workers a snapshot reads from the database.
const MAX_WORKERS: i64 = 200_000;
/// Views kept per snapshot.
const MAX_VIEWS: usize = 16;

/// One worker's numbers, as the table shows them.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// Index into [`Snapshot::accounts`].
    pub account: u32,
    /// The live numbers, except: accepted and rejected are all-time (database totals, or the
    /// live count while the database has not caught up), and the last share is the later of
    /// the live one and when the database last saw the worker.
    pub n: WorkerNumbers,
}

/// Columns a view sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sort {
    Name,
    Hashrate1m,
    Hashrate5m,
    Hashrate1h,
    Accepted,
    Rejected,
    Difficulty,
    Sessions,
    LastShare,
}

impl Sort {
    pub fn parse(s: &str) -> Option<Sort> {
        Some(match s {
            "name" => Sort::Name,
            "hashrate_1m" => Sort::Hashrate1m,
            "hashrate_5m" => Sort::Hashrate5m,
            "hashrate_1h" => Sort::Hashrate1h,
            "accepted" => Sort::Accepted,
            "rejected" => Sort::Rejected,
            "difficulty" => Sort::Difficulty,
            "sessions" => Sort::Sessions,
            "last_share" => Sort::LastShare,
            _ => return None,
        })
    }
}

/// What a view is: matching workers (`needle`, lowercased, empty for all) in an order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ViewKey {
    pub needle: String,
    pub sort: Sort,
    pub descending: bool,
    pub grouped: bool,
}

/// An account's sums over its matching workers.
#[derive(Debug, Clone, Default)]
pub struct Sums {
    pub workers: u64,
    pub online: u64,
    pub hashrate: [f64; 3],
    pub accepted: u64,
    pub rejected: u64,
}

/// A view: the matching entries in order, and the sums of their accounts.
pub struct View {
    pub order: Vec<u32>,
    pub sums: HashMap<u32, Sums>,
}

pub struct Snapshot {
    /// By name (byte order).
    pub entries: Vec<Entry>,
    /// Account names, sorted; entries point into it.
    pub accounts: Vec<String>,
    /// Every name lowercased, each followed by a newline, and where each begins: one buffer a
    /// search scans at memory speed.
    lower: String,
    starts: Vec<u32>,
    views: Mutex<HashMap<ViewKey, Arc<View>>>,
    /// One view sorted at a time: a crowd of searches queues here, not on the cores.
    sorting: tokio::sync::Semaphore,
}

fn merge(name: String, live: Option<WorkerNumbers>, total: Option<&WorkerRow>) -> Entry {
    let (acc_db, rej_db, seen) = total.map_or((0, 0, None), |t| {
        (
            t.accepted_shares.max(0) as u64,
            t.rejected_shares.max(0) as u64,
            Some(t.last_seen),
        )
    });
    let l = live.unwrap_or_default();
    Entry {
        name,
        account: 0,
        n: WorkerNumbers {
            accepted: acc_db.max(l.accepted),
            rejected: rej_db.max(l.rejected),
            last_share: l.last_share.max(seen),
            ..l
        },
    }
}

impl Snapshot {
    /// Read both sources and merge them, on the blocking pool; then sort the views of
    /// `previous` that list every worker (the table's orders, not its searches), so requests
    /// for them after the swap find them sorted rather than queue behind their sorts.
    pub async fn build(
        stats: Arc<Stats>,
        store: Backend,
        previous: Option<Arc<Snapshot>>,
    ) -> anyhow::Result<Snapshot> {
        let totals = store.workers_matching("", MAX_WORKERS).await?;
        tokio::task::spawn_blocking(move || {
            let s = Snapshot::merge_all(totals, &stats, Utc::now());
            if let Some(previous) = previous {
                let keys: Vec<ViewKey> = previous
                    .views
                    .lock()
                    .keys()
                    .filter(|k| k.needle.is_empty())
                    .cloned()
                    .collect();
                let sorted: HashMap<ViewKey, Arc<View>> = keys
                    .into_iter()
                    .map(|k| {
                        let v = Arc::new(s.sort(&k));
                        (k, v)
                    })
                    .collect();
                *s.views.lock() = sorted;
            }
            s
        })
        .await
        .map_err(|e| anyhow::anyhow!("building the worker directory: {e}"))
    }

    fn merge_all(mut totals: Vec<WorkerRow>, stats: &Stats, now: DateTime<Utc>) -> Snapshot {
        // Both sides by name (byte order; a database may collate otherwise), then one walk.
        totals.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let mut totals = totals.iter().peekable();
        let mut entries = Vec::with_capacity(totals.len());
        stats.for_each_worker_numbers(now, |name, live| {
            while let Some(t) = totals.next_if(|t| t.name < name) {
                entries.push(merge(t.name.clone(), None, Some(t)));
            }
            let total = totals.next_if(|t| t.name == name);
            entries.push(merge(name, Some(live), total));
        });
        entries.extend(totals.map(|t| merge(t.name.clone(), None, Some(t))));
        let mut s = Snapshot {
            entries,
            accounts: Vec::new(),
            lower: String::new(),
            starts: Vec::new(),
            views: Mutex::new(HashMap::new()),
            sorting: tokio::sync::Semaphore::new(1),
        };
        s.index();
        s
    }

    /// Accounts and the search buffer, from the entries (in name order).
    fn index(&mut self) {
        let mut accounts: Vec<String> = self
            .entries
            .iter()
            .map(|e| account_of(&e.name).to_owned())
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        self.lower.clear();
        self.starts.clear();
        for e in &mut self.entries {
            let a = account_of(&e.name);
            e.account = accounts
                .binary_search_by(|x| x.as_str().cmp(a))
                .unwrap_or(0) as u32;
            self.starts.push(self.lower.len() as u32);
            self.lower
                .extend(e.name.chars().flat_map(char::to_lowercase));
            self.lower.push('\n');
        }
        self.accounts = accounts;
    }

    /// Index of the first entry named after `after`.
    pub fn after(&self, after: &str) -> usize {
        self.entries.partition_point(|e| e.name.as_str() <= after)
    }

    /// The view `key` of this snapshot, sorted once and kept.
    pub async fn view(self: &Arc<Self>, key: ViewKey) -> Arc<View> {
        if let Some(v) = self.views.lock().get(&key) {
            return v.clone();
        }
        let _turn = self.sorting.acquire().await;
        if let Some(v) = self.views.lock().get(&key) {
            return v.clone();
        }
        let me = self.clone();
        let k = key.clone();
        let view = match tokio::task::spawn_blocking(move || me.sort(&k)).await {
            Ok(v) => Arc::new(v),
            Err(_) => Arc::new(self.sort(&key)),
        };
        let mut views = self.views.lock();
        if views.len() >= MAX_VIEWS {
            views.clear();
        }
        views.insert(key, view.clone());
        view
    }

    /// Entries whose lowercased name contains `needle`, in name order.
    fn matching(&self, needle: &str) -> Vec<u32> {
        if needle.is_empty() {
            return (0..self.entries.len() as u32).collect();
        }
        let mut found: Vec<u32> = Vec::new();
        for at in memchr::memmem::find_iter(self.lower.as_bytes(), needle.as_bytes()) {
            let i = self.starts.partition_point(|&s| s as usize <= at) - 1;
            // Within one name (a needle with a newline could span two).
            let end = self
                .starts
                .get(i + 1)
                .map_or(self.lower.len(), |&s| s as usize)
                - 1;
            if at + needle.len() <= end && found.last() != Some(&(i as u32)) {
                found.push(i as u32);
            }
        }
        found
    }

    fn sort(&self, key: &ViewKey) -> View {
        let mut order = self.matching(&key.needle);
        let mut sums: HashMap<u32, Sums> = HashMap::new();
        for &i in &order {
            let e = &self.entries[i as usize];
            let (s, e) = (sums.entry(e.account).or_default(), &e.n);
            s.workers += 1;
            s.online += u64::from(e.sessions > 0);
            s.accepted += e.accepted;
            s.rejected += e.rejected;
            for (w, r) in s.hashrate.iter_mut().zip(e.hashrate) {
                *w += r;
            }
        }
        let directed = |o: Ordering| if key.descending { o.reverse() } else { o };
        let entry = |i: u32| &self.entries[i as usize];
        if key.grouped {
            order.sort_by(|&a, &b| {
                let (a, b) = (entry(a), entry(b));
                let (ka, kb) = (&sums[&a.account], &sums[&b.account]);
                directed(account_key(key.sort, ka).total_cmp(&account_key(key.sort, kb)))
                    .then_with(|| a.account.cmp(&b.account))
                    .then_with(|| directed(compare(key.sort, a, b)))
            });
        } else if key.sort != Sort::Name || key.descending {
            // Entries are already in name order.
            order.sort_by(|&a, &b| directed(compare(key.sort, entry(a), entry(b))));
        }
        View { order, sums }
    }
}

/// Compare two entries by `sort` (ascending), names breaking ties so pages are stable.
fn compare(sort: Sort, a: &Entry, b: &Entry) -> Ordering {
    let (x, y) = (&a.n, &b.n);
    let by = match sort {
        Sort::Name => Ordering::Equal,
        Sort::Hashrate1m => x.hashrate[0].total_cmp(&y.hashrate[0]),
        Sort::Hashrate5m => x.hashrate[1].total_cmp(&y.hashrate[1]),
        Sort::Hashrate1h => x.hashrate[2].total_cmp(&y.hashrate[2]),
        Sort::Accepted => x.accepted.cmp(&y.accepted),
        Sort::Rejected => x.rejected.cmp(&y.rejected),
        Sort::Difficulty => x.difficulty.total_cmp(&y.difficulty),
        Sort::Sessions => x.sessions.cmp(&y.sessions),
        Sort::LastShare => x.last_share.cmp(&y.last_share),
    };
    by.then_with(|| a.name.cmp(&b.name))
}

/// The value an account is ordered by when rows are grouped.
fn account_key(sort: Sort, a: &Sums) -> f64 {
    match sort {
        Sort::Name | Sort::Difficulty | Sort::LastShare => 0.0,
        Sort::Hashrate1m => a.hashrate[0],
        Sort::Hashrate5m => a.hashrate[1],
        Sort::Hashrate1h => a.hashrate[2],
        Sort::Accepted => a.accepted as f64,
        Sort::Rejected => a.rejected as f64,
        Sort::Sessions => a.online as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(rate: f64, accepted: u64) -> WorkerNumbers {
        WorkerNumbers {
            hashrate: [rate; 3],
            accepted,
            accepted_difficulty: accepted as f64,
            rejected: 0,
            difficulty: 1.0,
            sessions: 1,
            opened: 1,
            last_share: None,
        }
    }

    fn snapshot(workers: &[(&str, f64, u64)]) -> Arc<Snapshot> {
        let stats = Stats::new();
        let now = Utc::now();
        let mut s = Snapshot::merge_all(Vec::new(), &stats, now);
        s.entries = workers
            .iter()
            .map(|(n, r, a)| merge((*n).into(), Some(live(*r, *a)), None))
            .collect();
        s.entries.sort_by(|a, b| a.name.cmp(&b.name));
        s.index();
        Arc::new(s)
    }

    fn names(s: &Snapshot, v: &View) -> Vec<String> {
        v.order
            .iter()
            .map(|&i| s.entries[i as usize].name.clone())
            .collect()
    }

    fn key(needle: &str, sort: Sort, descending: bool, grouped: bool) -> ViewKey {
        ViewKey {
            needle: needle.into(),
            sort,
            descending,
            grouped,
        }
    }

    #[tokio::test]
    async fn ties_break_by_name_so_pages_never_overlap() {
        let s = snapshot(&[("b.1", 5.0, 1), ("a.1", 5.0, 1), ("c.1", 9.0, 1)]);
        let v = s.view(key("", Sort::Hashrate5m, true, false)).await;
        assert_eq!(names(&s, &v), ["c.1", "b.1", "a.1"]);
    }

    #[tokio::test]
    async fn grouped_views_order_accounts_by_their_sums_over_the_matching_workers() {
        let s = snapshot(&[
            ("a.1", 5.0, 10),
            ("a.2", 1.0, 1),
            ("b.1", 2.0, 8),
            ("b.2", 2.0, 8),
            ("c.x", 1.0, 100),
        ]);
        let v = s.view(key("", Sort::Accepted, true, true)).await;
        // Descending all the way: b's tie (8 and 8) falls to the names, reversed too.
        assert_eq!(names(&s, &v), ["c.x", "b.2", "b.1", "a.1", "a.2"]);
        // Searching ".1" leaves b with 8 and a with 10: a first.
        let v = s.view(key(".1", Sort::Accepted, true, true)).await;
        assert_eq!(names(&s, &v), ["a.1", "b.1"]);
        assert_eq!(v.sums[&0].workers, 1);
    }

    #[tokio::test]
    async fn searches_match_within_one_name_whatever_its_case() {
        let s = snapshot(&[
            ("Alice.Rig1", 1.0, 1),
            ("bob.x", 1.0, 1),
            ("ali.ce", 1.0, 1),
        ]);
        let found = |needle: &str| {
            s.matching(needle)
                .iter()
                .map(|&i| s.entries[i as usize].name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(found("alice"), ["Alice.Rig1"]);
        assert_eq!(found("i"), ["Alice.Rig1", "ali.ce"]);
        assert_eq!(
            found("rig1\nali"),
            Vec::<String>::new(),
            "never across two names"
        );
        assert_eq!(found("x"), ["bob.x"]);
        assert_eq!(found("zz"), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_view_is_sorted_once_per_snapshot() {
        let s = snapshot(&[("a.1", 1.0, 1), ("b.1", 2.0, 2)]);
        let k = key("", Sort::Accepted, false, false);
        let first = s.view(k.clone()).await;
        let again = s.view(k).await;
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(s.after("a.1"), 1);
        assert_eq!(s.after(""), 0);
    }

    #[test]
    fn the_database_and_memory_merge_into_one_row_per_name() {
        let stats = Stats::new();
        let now = Utc::now();
        stats.accepted("b.1", 2.0, now);
        stats.accepted("d.1", 2.0, now);
        let row = |name: &str, accepted| WorkerRow {
            name: name.into(),
            account: account_of(name).into(),
            first_seen: now,
            last_seen: now,
            accepted_shares: accepted,
            rejected_shares: 0,
            accepted_difficulty: 0.0,
        };
        // In the order a database collating otherwise might return them.
        let s = Snapshot::merge_all(
            vec![row("c.1", 7), row("B.2", 1), row("b.1", 9), row("a.1", 3)],
            &stats,
            now,
        );
        let got: Vec<(&str, u64, bool)> = s
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.n.accepted, e.n.hashrate[0] > 0.0))
            .collect();
        assert_eq!(
            got,
            [
                ("B.2", 1, false),
                ("a.1", 3, false),
                ("b.1", 9, true),
                ("c.1", 7, false),
                ("d.1", 1, true)
            ]
        );
        assert_eq!(s.accounts, ["B", "a", "b", "c", "d"]);
        assert_eq!(s.entries[4].account, 4);
    }

    #[tokio::test]
    async fn a_new_snapshot_comes_with_the_last_ones_orders_sorted_but_not_its_searches() {
        let stats = Arc::new(Stats::new());
        let now = Utc::now();
        stats.accepted("a.1", 1.0, now);
        stats.accepted("b.1", 2.0, now);
        let dir = tempfile::tempdir().unwrap();
        let store = Backend::connect(&format!("sqlite://{}/p.sqlite", dir.path().display()))
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let first = Arc::new(
            Snapshot::build(stats.clone(), store.clone(), None)
                .await
                .unwrap(),
        );
        let order = key("", Sort::Hashrate1m, true, false);
        first.view(order.clone()).await;
        first.view(key("a", Sort::Name, false, false)).await;
        let next = Snapshot::build(stats, store, Some(first)).await.unwrap();
        let views = next.views.lock();
        assert_eq!(views.keys().collect::<Vec<_>>(), [&order]);
        let names: Vec<&str> = views[&order]
            .order
            .iter()
            .map(|&i| next.entries[i as usize].name.as_str())
            .collect();
        assert_eq!(names, ["b.1", "a.1"]);
    }

    #[test]
    fn the_account_is_the_name_before_the_first_dot() {
        assert_eq!(account_of("alice.rig1.gpu"), "alice");
        assert_eq!(account_of("bob"), "bob");
    }

    #[test]
    fn totals_from_the_database_win_over_a_fresh_live_count() {
        let mut l = live(0.0, 3);
        l.rejected = 1;
        let e = merge(
            "a.1".into(),
            Some(l),
            Some(&WorkerRow {
                name: "a.1".into(),
                account: "a".into(),
                first_seen: Utc::now(),
                last_seen: Utc::now(),
                accepted_shares: 100,
                rejected_shares: 0,
                accepted_difficulty: 100.0,
            }),
        );
        assert_eq!((e.n.accepted, e.n.rejected), (100, 1));
        assert!(e.n.last_share.is_some());
    }
}
