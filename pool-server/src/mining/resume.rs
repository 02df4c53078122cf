//! Session resume: a miner whose connection drops may come back within the resume window,
//! present the subscription id it was given as the second `mining.subscribe` parameter (as
//! cgminer, bfgminer and cpuminer do), and carry on where it was: the same extranonce1, the same
//! difficulty and vardiff estimate, and the jobs it was mining, so shares found before the drop
//! are still accepted (and still refused when sent twice).
//!
//! A parked session keeps its extranonce1 leased, so nobody else is handed it meanwhile. The
//! table is bounded: past its capacity the oldest parked session is let go, and a session that
//! finds the extranonce1 space full lets one go too. An unknown or expired id is no error: the
//! miner just gets a fresh session.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use protocol::{Difficulty, SubscriptionId, VersionMask};

use super::extranonce::Lease;
use super::vardiff::Vardiff;
use crate::share::{Dedup, IssuedJob};

/// What a session leaves behind for its miner to pick up.
pub struct Parked {
    pub lease: Lease,
    pub difficulty: Difficulty,
    pub issued: VecDeque<IssuedJob>,
    pub dedup: Dedup,
    pub vardiff: Vardiff,
    pub version_mask: Option<VersionMask>,
}

pub struct ResumeTable {
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    parked: HashMap<SubscriptionId, (Instant, Parked)>,
    /// Park order, oldest first; may name sessions already taken (skipped when met).
    order: VecDeque<(Instant, SubscriptionId)>,
}

impl Inner {
    /// Drop the oldest entry of `order`, and its session if it is still parked.
    fn pop_oldest(&mut self) -> Option<Parked> {
        let (at, id) = self.order.pop_front()?;
        match self.parked.get(&id) {
            Some((parked_at, _)) if *parked_at == at => self.parked.remove(&id).map(|(_, p)| p),
            _ => None,
        }
    }
}

impl ResumeTable {
    /// Sessions are kept `window` after they end, at most `capacity` at once.
    pub fn new(window: Duration, capacity: usize) -> Self {
        ResumeTable {
            window,
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Keep `session` under `id` for the resume window.
    pub fn park(&self, id: SubscriptionId, session: Parked) {
        if self.window.is_zero() || self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let mut released = self.expire_locked(now);
        let mut g = self.inner.lock();
        while g.parked.len() >= self.capacity {
            released.extend(g.pop_oldest());
        }
        if g.order.len() > 2 * self.capacity {
            let Inner { parked, order } = &mut *g;
            order.retain(|(at, id)| parked.get(id).is_some_and(|(p, _)| p == at));
        }
        g.order.push_back((now, id.clone()));
        released.extend(g.parked.insert(id, (now, session)).map(|(_, p)| p));
        drop(g);
        drop(released);
    }

    /// The session parked under `id`, if it is still within the window.
    pub fn take(&self, id: &SubscriptionId) -> Option<Parked> {
        let released = self.expire_locked(Instant::now());
        let found = self.inner.lock().parked.remove(id).map(|(_, p)| p);
        drop(released);
        found
    }

    /// Let the oldest parked session go (its extranonce1 is wanted); `false` if none is left.
    pub fn evict_oldest(&self) -> bool {
        let mut g = self.inner.lock();
        while !g.order.is_empty() {
            if let Some(p) = g.pop_oldest() {
                drop(g);
                drop(p);
                return true;
            }
        }
        false
    }

    /// Let every session past the window go.
    pub fn expire(&self) {
        drop(self.expire_locked(Instant::now()));
    }

    /// Sessions past the window, taken out of the table (dropped by the caller, outside the
    /// lock: dropping releases their extranonce1 under the allocator's own lock).
    fn expire_locked(&self, now: Instant) -> Vec<Parked> {
        let mut g = self.inner.lock();
        let mut out = Vec::new();
        while g
            .order
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) >= self.window)
        {
            out.extend(g.pop_oldest());
        }
        out
    }

    pub fn len(&self) -> usize {
        self.inner.lock().parked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mining::extranonce::ExtranonceAllocator;
    use crate::mining::vardiff::VardiffConfig;

    fn parked(en: &std::sync::Arc<ExtranonceAllocator>) -> Parked {
        let d = Difficulty::new(1.0).unwrap();
        Parked {
            lease: en.lease().unwrap(),
            difficulty: d,
            issued: VecDeque::new(),
            dedup: Dedup::default(),
            vardiff: Vardiff::new(
                VardiffConfig {
                    target_interval: Duration::from_secs(10),
                    retarget_window: Duration::from_secs(30),
                    variance: 0.3,
                    min: d,
                    max: d,
                },
                d,
                Instant::now(),
            ),
            version_mask: None,
        }
    }

    fn id(s: &str) -> SubscriptionId {
        SubscriptionId::parse(s).unwrap()
    }

    #[test]
    fn a_parked_session_keeps_its_extranonce1_until_taken_or_expired() {
        let en = ExtranonceAllocator::new(2, crate::jobs::TipGeneration::default());
        let t = ResumeTable::new(Duration::from_millis(50), 10);
        let p = parked(&en);
        let en1 = p.lease.extranonce1().clone();
        t.park(id("a"), p);
        assert_eq!(en.live(), 1);
        assert!(t.take(&id("b")).is_none());
        let back = t.take(&id("a")).expect("parked");
        assert_eq!(back.lease.extranonce1(), &en1);
        assert!(t.take(&id("a")).is_none(), "taken once");
        t.park(id("a"), back);
        std::thread::sleep(Duration::from_millis(60));
        t.expire();
        assert!(t.is_empty());
        assert_eq!(en.live(), 0, "expired sessions release their extranonce1");
    }

    #[test]
    fn the_table_is_bounded_and_gives_way_oldest_first() {
        let en = ExtranonceAllocator::new(2, crate::jobs::TipGeneration::default());
        let t = ResumeTable::new(Duration::from_secs(600), 3);
        for i in 0..100 {
            t.park(id(&format!("s{i}")), parked(&en));
            let _ = t.take(&id(&format!("s{}", i - i % 2)));
        }
        assert!(t.len() <= 3);
        assert_eq!(en.live(), t.len());
        assert!(t.inner.lock().order.len() <= 2 * 3 + 1);
        let before = t.len();
        assert!(t.evict_oldest());
        assert_eq!(t.len(), before - 1);
        assert!(t.take(&id("s99")).is_some(), "the newest stays");
    }
}
