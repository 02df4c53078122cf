//! Unique extranonce1 values: each live session owns one, so no two miners ever search the
//! same coinbase. Values are leased and come back when the session ends, with one rule that
//! keeps a share from being credited twice: a value whose session had shares accepted on the
//! current chain tip cools until the tip moves. Duplicate detection is per session, so a new
//! session handed the same value on the same tip could submit the old session's shares again
//! (same job, same extranonce1: the same headers); once the tip has moved they are stale.
//! A session that never had a share accepted on the tip gives its value back at once, so
//! connections that only subscribe cost nothing. The guarantee does not rest on the space
//! being large: it holds with `--extranonce1-size 2`.
//!
//! On an edge of several (`--edge-id`), the first byte of every value is the edge's id and
//! the rest is leased here, so edges on one database never hand out the same value. A miner
//! moved to another edge keeps its value there (a foreign lease, which the other edge never
//! hands out); while it does, its home edge holds the value as reserved, from the sessions
//! the edges share (see [`super::shared`]). So that a value is never handed out here while
//! another edge took its session over, releases wait for the next look at what is reserved.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use protocol::Extranonce1;

use super::edge_id::EdgeId;
use crate::jobs::TipGeneration;

pub struct ExtranonceAllocator {
    size: usize,
    /// The edge whose id begins every value, when the pool has several.
    edge: Option<EdgeId>,
    tip: TipGeneration,
    state: Mutex<State>,
}

struct State {
    next: u64,
    /// Values in use, cooling ones included.
    live: HashSet<u64>,
    /// Values released by sessions that had shares accepted, with the tip generation they
    /// were credited on, oldest first: free once the tip has moved past it.
    cooling: VecDeque<(u64, u64)>,
    /// Values of this edge that sessions on other edges hold (or may resume): never leased.
    reserved: HashSet<u64>,
    /// Whether releases wait for the next look at `reserved` (edges sharing sessions).
    defer: bool,
    /// Looks at `reserved` begun so far.
    epoch: u64,
    /// Released values waiting for a look begun after their release: (value, epoch at
    /// release, tip generation credited on).
    awaiting: Vec<(u64, u64, Option<u64>)>,
}

impl State {
    fn release(&mut self, value: u64, credited_on: Option<u64>, tip: u64) {
        match credited_on {
            Some(generation) if generation >= tip => self.cooling.push_back((generation, value)),
            _ => {
                self.live.remove(&value);
            }
        }
    }

    fn thaw(&mut self, tip: u64) {
        while let Some(&(generation, value)) = self.cooling.front() {
            if generation >= tip {
                break;
            }
            self.cooling.pop_front();
            self.live.remove(&value);
        }
    }
}

/// An extranonce1 held by one session; released on drop (after the tip moves, when shares
/// were accepted under it).
pub struct Lease {
    value: u64,
    extranonce1: Extranonce1,
    /// `None` for a value of another edge, carried on here.
    owner: Option<Arc<ExtranonceAllocator>>,
    /// The newest tip generation a share under this lease was accepted on.
    credited_on: Option<u64>,
}

impl Lease {
    /// A value another edge handed out, for a session it gave over: dropping it releases
    /// nothing here (its home edge frees it once no session holds it).
    pub fn foreign(extranonce1: Extranonce1) -> Lease {
        Lease {
            value: 0,
            extranonce1,
            owner: None,
            credited_on: None,
        }
    }

    pub fn extranonce1(&self) -> &Extranonce1 {
        &self.extranonce1
    }

    /// A share under this lease was accepted on tip `generation`.
    pub fn credited(&mut self, generation: u64) {
        self.credited_on = Some(self.credited_on.map_or(generation, |g| g.max(generation)));
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(owner) = &self.owner else {
            return;
        };
        let tip = owner.tip.current();
        let mut s = owner.state.lock();
        if s.defer {
            let epoch = s.epoch;
            s.awaiting.push((self.value, epoch, self.credited_on));
        } else {
            s.release(self.value, self.credited_on, tip);
        }
    }
}

impl ExtranonceAllocator {
    /// `size` bytes per extranonce1 (2..=8), cooling values until `tip` moves. Values start
    /// at a random point so restarts do not hand out the same sequence.
    pub fn new(size: usize, tip: TipGeneration) -> Arc<Self> {
        Self::on_edge(size, None, tip)
    }

    /// [`ExtranonceAllocator::new`] for the edge `edge`: its id is the first byte of every
    /// value (`size` at least 3, so an edge still has 65,535 values).
    pub fn on_edge(size: usize, edge: Option<EdgeId>, tip: TipGeneration) -> Arc<Self> {
        assert!((2..=8).contains(&size));
        assert!(edge.is_none() || size >= 3, "checked with the flags");
        Arc::new(ExtranonceAllocator {
            size,
            edge,
            tip,
            state: Mutex::new(State {
                next: rand::random(),
                live: HashSet::new(),
                cooling: VecDeque::new(),
                reserved: HashSet::new(),
                defer: false,
                epoch: 0,
                awaiting: Vec::new(),
            }),
        })
    }

    /// Bytes leased here (the edge's byte aside).
    fn free_bytes(&self) -> usize {
        self.size - usize::from(self.edge.is_some())
    }

    fn space(&self) -> u64 {
        if self.free_bytes() >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * self.free_bytes())) - 1
        }
    }

    /// A fresh extranonce1, or `None` when every value is in use (or cooling).
    pub fn lease(self: &Arc<Self>) -> Option<Lease> {
        let mut s = self.state.lock();
        s.thaw(self.tip.current());
        if (s.live.len() + s.reserved.len()) as u64 >= self.space() {
            return None;
        }
        loop {
            let v = s.next & self.space();
            s.next = s.next.wrapping_add(1);
            if !s.reserved.contains(&v) && s.live.insert(v) {
                let mut bytes: Vec<u8> = self.edge.map(EdgeId::prefix).into_iter().collect();
                bytes.extend(&v.to_be_bytes()[8 - self.free_bytes()..]);
                return Some(Lease {
                    value: v,
                    extranonce1: Extranonce1(bytes),
                    owner: Some(self.clone()),
                    credited_on: None,
                });
            }
        }
    }

    /// The value `extranonce1` stands for here, if this edge handed it out.
    fn value_of(&self, extranonce1: &Extranonce1) -> Option<u64> {
        let bytes = &extranonce1.0;
        if bytes.len() != self.size || self.edge.is_some_and(|e| bytes[0] != e.prefix()) {
            return None;
        }
        let rest = &bytes[self.size - self.free_bytes()..];
        Some(rest.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b)))
    }

    /// Whether `extranonce1` is a value this edge hands out (by its length and edge byte).
    pub fn is_home_of(&self, extranonce1: &Extranonce1) -> bool {
        self.value_of(extranonce1).is_some()
    }

    /// Take back a value of this edge for a session this edge resumes from the shared
    /// directory; `None` when the value is not this edge's or is in use here.
    pub fn adopt(self: &Arc<Self>, extranonce1: &Extranonce1) -> Option<Lease> {
        let v = self.value_of(extranonce1)?;
        let mut s = self.state.lock();
        s.thaw(self.tip.current());
        // Released here and waiting for a look: it is still ours, and live.
        let before = s.awaiting.len();
        s.awaiting.retain(|(value, _, _)| *value != v);
        let waited = s.awaiting.len() < before;
        (waited || s.live.insert(v)).then(|| Lease {
            value: v,
            extranonce1: extranonce1.clone(),
            owner: Some(self.clone()),
            credited_on: None,
        })
    }

    /// From now on a released value waits for a look at the reserved values begun after
    /// its release (edges that share sessions call this before the first session).
    pub fn defer_releases(&self) {
        self.state.lock().defer = true;
    }

    /// A look at the reserved values begins: returns its number for
    /// [`ExtranonceAllocator::set_reserved`].
    pub fn look_begins(&self) -> u64 {
        let mut s = self.state.lock();
        s.epoch += 1;
        s.epoch
    }

    /// What the look numbered `look` found: the values of this edge that sessions elsewhere
    /// hold or may resume. Values released before that look began are free again, unless
    /// they are among them (they stay out until a later look no longer finds them).
    pub fn set_reserved<'a>(&self, look: u64, reserved: impl IntoIterator<Item = &'a Extranonce1>) {
        let values: HashSet<u64> = reserved
            .into_iter()
            .filter_map(|e| self.value_of(e))
            .collect();
        let tip = self.tip.current();
        let mut s = self.state.lock();
        s.reserved = values;
        let awaiting = std::mem::take(&mut s.awaiting);
        for (value, epoch, credited_on) in awaiting {
            if epoch < look {
                s.release(value, credited_on, tip);
            } else {
                s.awaiting.push((value, epoch, credited_on));
            }
        }
    }

    /// Values in use, cooling ones included.
    pub fn live(&self) -> usize {
        let mut s = self.state.lock();
        s.thaw(self.tip.current());
        s.live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_never_hand_out_the_same_value() {
        let edge = |id| ExtranonceAllocator::on_edge(3, EdgeId::new(id), TipGeneration::default());
        let (one, two) = (edge(1), edge(2));
        let a: Vec<_> = (0..65_535).map(|_| one.lease().unwrap()).collect();
        let b: Vec<_> = (0..65_535).map(|_| two.lease().unwrap()).collect();
        assert!(
            one.lease().is_none(),
            "an edge has 65,535 values of 3 bytes"
        );
        let first: HashSet<_> = a.iter().map(|l| l.extranonce1().clone()).collect();
        assert_eq!(first.len(), 65_535);
        assert!(b.iter().all(|l| !first.contains(l.extranonce1())));
        assert!(a
            .iter()
            .all(|l| l.extranonce1().len() == 3 && l.extranonce1().0[0] == 1));
        assert!(b.iter().all(|l| l.extranonce1().0[0] == 2));
    }

    #[test]
    fn leases_are_unique_and_come_back() {
        let a = ExtranonceAllocator::new(2, TipGeneration::default());
        let leases: Vec<_> = (0..65535).map(|_| a.lease().unwrap()).collect();
        let distinct: HashSet<_> = leases.iter().map(|l| l.extranonce1().clone()).collect();
        assert_eq!(distinct.len(), 65535);
        assert!(a.lease().is_none(), "the space is exhausted");
        drop(leases);
        assert_eq!(a.live(), 0);
        assert_eq!(a.lease().unwrap().extranonce1().len(), 2);
    }

    #[test]
    fn a_value_credited_on_this_tip_comes_back_only_after_the_tip_moves() {
        let tip = TipGeneration::default();
        tip.advance();
        let a = ExtranonceAllocator::new(2, tip.clone());
        let mut worked = a.lease().unwrap();
        let value = worked.extranonce1().clone();
        worked.credited(tip.current());
        drop(worked);
        // Every other value, round and round: the space wraps, the worked value never comes.
        for _ in 0..3 * 65_535 {
            let l = a.lease().unwrap();
            assert_ne!(l.extranonce1(), &value, "handed out again on the same tip");
        }
        tip.advance();
        let back = (0..65_535)
            .map(|_| a.lease().unwrap())
            .any(|l| l.extranonce1() == &value);
        assert!(back, "free again once the tip moved");
        // Credited on an older tip: free at once.
        let mut old = a.lease().unwrap();
        old.credited(tip.current() - 1);
        drop(old);
        assert_eq!(a.live(), 0);
    }

    #[test]
    fn a_value_another_edge_holds_is_never_handed_out_here() {
        let a = ExtranonceAllocator::on_edge(3, EdgeId::new(9), TipGeneration::default());
        a.defer_releases();
        let moved = a.lease().unwrap();
        let value = moved.extranonce1().clone();
        // The session went to another edge: a look begins, and then this edge lets it go.
        let look = a.look_begins();
        drop(moved);
        a.set_reserved(look, [&value]);
        let next = a.look_begins();
        a.set_reserved(next, [&value]);
        for _ in 0..65_534 {
            assert_ne!(a.lease().unwrap().extranonce1(), &value);
        }
        // Once no edge holds it, it comes back.
        let last = a.look_begins();
        a.set_reserved(last, []);
        assert_eq!(a.live(), 0);
        let back = a.adopt(&value).expect("free again, adopted");
        assert!(a.adopt(&value).is_none(), "adopted once");
        drop(back);
        let other = ExtranonceAllocator::on_edge(3, EdgeId::new(8), TipGeneration::default());
        assert!(other.adopt(&value).is_none(), "not the other edge's value");
        drop(Lease::foreign(value));
        assert_eq!(other.live(), 0);
    }

    #[test]
    fn a_release_waits_for_a_look_begun_after_it() {
        let a = ExtranonceAllocator::on_edge(3, EdgeId::new(1), TipGeneration::default());
        a.defer_releases();
        let l = a.lease().unwrap();
        let early = a.look_begins();
        drop(l);
        a.set_reserved(early, []);
        assert_eq!(a.live(), 1, "that look began before the release");
        let later = a.look_begins();
        a.set_reserved(later, []);
        assert_eq!(a.live(), 0);
    }
}
