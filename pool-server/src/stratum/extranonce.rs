//! Unique extranonce1 values: each live session owns one, so no two miners ever search the
//! same coinbase. Values are leased and come back when the session ends.

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;
use protocol::Extranonce1;

pub struct ExtranonceAllocator {
    size: usize,
    state: Mutex<State>,
}

struct State {
    next: u64,
    live: HashSet<u64>,
}

/// An extranonce1 held by one session; released on drop.
pub struct Lease {
    value: u64,
    extranonce1: Extranonce1,
    owner: Arc<ExtranonceAllocator>,
}

impl Lease {
    pub fn extranonce1(&self) -> &Extranonce1 {
        &self.extranonce1
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.owner.state.lock().live.remove(&self.value);
    }
}

impl ExtranonceAllocator {
    /// `size` bytes per extranonce1 (2..=8). Values start at a random point so restarts do not
    /// hand out the same sequence.
    pub fn new(size: usize) -> Arc<Self> {
        assert!((2..=8).contains(&size));
        Arc::new(ExtranonceAllocator {
            size,
            state: Mutex::new(State {
                next: rand::random(),
                live: HashSet::new(),
            }),
        })
    }

    fn space(&self) -> u64 {
        if self.size >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * self.size)) - 1
        }
    }

    /// A fresh extranonce1, or `None` when every value is in use.
    pub fn lease(self: &Arc<Self>) -> Option<Lease> {
        let mut s = self.state.lock();
        if s.live.len() as u64 >= self.space() {
            return None;
        }
        loop {
            let v = s.next & self.space();
            s.next = s.next.wrapping_add(1);
            if s.live.insert(v) {
                let bytes = v.to_be_bytes()[8 - self.size..].to_vec();
                return Some(Lease {
                    value: v,
                    extranonce1: Extranonce1(bytes),
                    owner: self.clone(),
                });
            }
        }
    }

    pub fn live(&self) -> usize {
        self.state.lock().live.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_unique_and_come_back() {
        let a = ExtranonceAllocator::new(2);
        let leases: Vec<_> = (0..65535).map(|_| a.lease().unwrap()).collect();
        let distinct: HashSet<_> = leases.iter().map(|l| l.extranonce1().clone()).collect();
        assert_eq!(distinct.len(), 65535);
        assert!(a.lease().is_none(), "the space is exhausted");
        drop(leases);
        assert_eq!(a.live(), 0);
        assert_eq!(a.lease().unwrap().extranonce1().len(), 2);
    }
}
