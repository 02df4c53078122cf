//! The coinbase planner's window, kept in memory between reads: per-account work in time
//! buckets, newest last, so each read of the store costs only the shares since the last one.
//!
//! Walking a PPLNS window of twice the network difficulty can mean days of shares; the ledger
//! does it once per block, but the planner reads the window every few seconds. So the planner
//! walks it once (one bucket per slice the walk read), then adds a bucket per read and drops
//! the buckets that newer work has pushed out of the window. The bucket the window's edge
//! falls in is not summed: [`RollingWindow::window`] names its time range and the work still
//! wanted, and the planner reads those shares again from the store and counts them share by
//! share, so the window is exactly the one a fresh walk finds. At most
//! `max_buckets` are kept: past that, the two adjacent buckets with the least work between
//! them are merged (memory stays bounded whatever the window's length; the edge stays fine
//! where the work is).

use std::collections::VecDeque;

use super::scheme::{Weights, Work};

#[derive(Debug, Clone, PartialEq)]
struct Bucket {
    /// Shares received in `[lo_us, hi_us)` (unix microseconds).
    lo_us: i64,
    hi_us: i64,
    weights: Weights,
    total: Work,
    shares: u64,
}

/// The window as a planner holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct RollingWindow {
    buckets: VecDeque<Bucket>,
    max_buckets: usize,
}

/// A window read off the buckets: the whole buckets it covers, and where its edge falls.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub weights: Weights,
    pub credited: Work,
    pub shares: u64,
    /// The start of the oldest whole bucket counted.
    pub oldest_us: Option<i64>,
    /// The bucket the edge falls in: its newest `left` work is in the window.
    pub edge: Option<Edge>,
}

/// Shares received in `[lo_us, hi_us)` of which the newest `left` work counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub lo_us: i64,
    pub hi_us: i64,
    pub left: Work,
}

fn total_of(weights: &Weights) -> Work {
    Work(weights.values().fold(0u128, |s, w| s.saturating_add(w.0)))
}

impl RollingWindow {
    pub fn new(max_buckets: usize) -> RollingWindow {
        RollingWindow {
            buckets: VecDeque::new(),
            max_buckets: max_buckets.max(2),
        }
    }

    /// Add the work received in `[lo_us, hi_us)`, newer than every bucket held.
    pub fn push(&mut self, lo_us: i64, hi_us: i64, weights: Weights, shares: u64) {
        self.insert(lo_us, hi_us, weights, shares, false);
    }

    /// Add work older than every bucket held (the first walk goes back in time).
    pub fn push_older(&mut self, lo_us: i64, hi_us: i64, weights: Weights, shares: u64) {
        self.insert(lo_us, hi_us, weights, shares, true);
    }

    fn insert(&mut self, lo_us: i64, hi_us: i64, weights: Weights, shares: u64, older: bool) {
        let bucket = Bucket {
            lo_us,
            hi_us,
            total: total_of(&weights),
            weights,
            shares,
        };
        if older {
            self.buckets.push_front(bucket);
        } else {
            self.buckets.push_back(bucket);
        }
        while self.buckets.len() > self.max_buckets {
            self.merge_lightest_pair();
        }
    }

    fn merge_lightest_pair(&mut self) {
        // The newest bucket stays as it is (the next push lands beside it).
        let last = self.buckets.len().saturating_sub(2);
        let Some(i) = (0..last).min_by_key(|&i| {
            self.buckets[i]
                .total
                .0
                .saturating_add(self.buckets[i + 1].total.0)
        }) else {
            return;
        };
        let newer = self.buckets.remove(i + 1).expect("in range");
        let older = &mut self.buckets[i];
        older.hi_us = newer.hi_us;
        older.total.0 = older.total.0.saturating_add(newer.total.0);
        older.shares += newer.shares;
        for (account, w) in newer.weights {
            let e = older.weights.entry(account).or_default();
            e.0 = e.0.saturating_add(w.0);
        }
    }

    /// Drop the buckets a window of `window` work no longer reaches.
    pub fn trim(&mut self, window: Work) {
        let mut total: u128 = self
            .buckets
            .iter()
            .fold(0u128, |s, b| s.saturating_add(b.total.0));
        while let Some(oldest) = self.buckets.front() {
            let rest = total - oldest.total.0;
            if rest < window.0 {
                break;
            }
            total = rest;
            self.buckets.pop_front();
        }
    }

    /// The newest `window` work held, per account: whole buckets from the newest back, and
    /// the bucket the edge falls in as an [`Edge`] for the caller to count share by share.
    pub fn window(&self, window: Work) -> Held {
        let mut left = window.0;
        let mut weights = Weights::new();
        let mut shares = 0u64;
        let mut oldest_us = None;
        let mut edge = None;
        for b in self.buckets.iter().rev() {
            if left == 0 {
                break;
            }
            if b.total.0 == 0 {
                continue;
            }
            if b.total.0 > left {
                edge = Some(Edge {
                    lo_us: b.lo_us,
                    hi_us: b.hi_us,
                    left: Work(left),
                });
                break;
            }
            oldest_us = Some(b.lo_us);
            left -= b.total.0;
            shares += b.shares;
            for (a, w) in &b.weights {
                let e = weights.entry(a.clone()).or_default();
                e.0 = e.0.saturating_add(w.0);
            }
        }
        let credited = total_of(&weights);
        Held {
            weights,
            credited,
            shares,
            oldest_us,
            edge,
        }
    }

    /// Buckets held (for tests and logs).
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewards::scheme::{pplns_weights, ShareWork};
    use proptest::prelude::*;

    fn w(pairs: &[(&str, u128)]) -> Weights {
        pairs
            .iter()
            .map(|(a, x)| (a.to_string(), Work(*x)))
            .collect()
    }

    #[test]
    fn whole_buckets_then_the_edge() {
        let mut r = RollingWindow::new(16);
        r.push(0, 10, w(&[("a", 100)]), 10);
        r.push(10, 20, w(&[("b", 50), ("a", 50)]), 10);
        r.push(20, 30, w(&[("b", 100)]), 10);
        let held = r.window(Work(250));
        assert_eq!(held.weights, w(&[("a", 50), ("b", 150)]));
        assert_eq!(held.oldest_us, Some(10));
        assert_eq!(held.shares, 20);
        assert_eq!(
            held.edge,
            Some(Edge {
                lo_us: 0,
                hi_us: 10,
                left: Work(50)
            })
        );
        // Exactly two buckets: no edge.
        let held = r.window(Work(200));
        assert_eq!(held.credited, Work(200));
        assert_eq!(held.edge, None);
        // Everything held counts when the window is larger.
        let held = r.window(Work(10_000));
        assert_eq!((held.credited, held.edge), (Work(300), None));
    }

    #[test]
    fn trimming_keeps_what_the_window_reaches() {
        let mut r = RollingWindow::new(16);
        for i in 0..10 {
            r.push(i * 10, i * 10 + 10, w(&[("a", 10)]), 1);
        }
        r.trim(Work(35));
        // 40 work are left: the edge bucket is kept, the older ones dropped.
        assert_eq!(r.len(), 4);
        let held = r.window(Work(35));
        assert_eq!(held.credited, Work(30));
        assert_eq!(held.edge.unwrap().left, Work(5));
    }

    #[test]
    fn merging_bounds_the_buckets_and_keeps_the_sums() {
        let mut r = RollingWindow::new(8);
        for i in 0..100u128 {
            let name = if i % 3 == 0 { "b" } else { "a" };
            r.push(i as i64, i as i64 + 1, w(&[(name, i + 1)]), 1);
        }
        assert_eq!(r.len(), 8);
        let held = r.window(Work(u128::MAX));
        assert_eq!(held.credited, Work((1..=100).sum()));
        assert_eq!(held.shares, 100);
        assert_eq!(held.oldest_us, Some(0));
    }

    proptest! {
        /// Whole buckets plus the edge counted share by share (as the planner does from the
        /// store) make exactly the PPLNS window, however the shares were bucketed.
        #[test]
        fn buckets_and_the_edge_make_exact_pplns(
            shares in proptest::collection::vec((0usize..4, 1u128..1_000), 1..80),
            cuts in proptest::collection::vec(1usize..6, 1..40),
            window in 1u128..30_000,
            max_buckets in 2usize..12,
        ) {
            let names = ["a", "b", "c", "d"];
            let list: Vec<ShareWork> = shares
                .iter()
                .enumerate()
                .map(|(i, (who, work))| ShareWork {
                    account: names[*who].to_owned(),
                    work: Work(*work),
                    accepted: true,
                    at_micros: i as i64,
                    id: 0,
                })
                .collect();
            let mut r = RollingWindow::new(max_buckets);
            let mut at = 0usize;
            for cut in cuts.iter().cycle() {
                if at >= list.len() {
                    break;
                }
                let end = (at + cut).min(list.len());
                let mut bucket = Weights::new();
                for s in &list[at..end] {
                    bucket.entry(s.account.clone()).or_default().0 += s.work.0;
                }
                r.push(at as i64, end as i64, bucket, (end - at) as u64);
                at = end;
            }
            r.trim(Work(window));
            let held = r.window(Work(window));
            let mut got = held.weights.clone();
            if let Some(edge) = held.edge {
                let inside: Vec<ShareWork> = list
                    .iter()
                    .filter(|s| s.at_micros >= edge.lo_us && s.at_micros < edge.hi_us)
                    .cloned()
                    .collect();
                for (a, x) in pplns_weights(&inside, edge.left) {
                    got.entry(a).or_default().0 += x.0;
                }
            }
            prop_assert_eq!(got, pplns_weights(&list, Work(window)));
        }
    }
}
