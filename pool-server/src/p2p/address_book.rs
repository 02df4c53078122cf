//! The addresses a node knows of other nodes: the `--peer` seeds, those peers tell it about
//! (`addr`), and those that dialled it. Outbound connections are dialled from here, with a
//! backoff per address that doubles with each failure, and `getaddr` is answered from here.
//!
//! Anyone can send `addr`, so the book is bounded: past [`AddressBook::capacity`] a learned
//! address replaces a learned one that has never worked (the one with most failures); seeds
//! and addresses seen working are never evicted, so a flood of `addr` cannot push out the
//! peers the node relies on. Addresses that cannot be dialled (port 0, unspecified, multicast)
//! are never stored.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// First retry delay after a failed dial; doubles per failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Addresses one `addr` message may teach (Bitcoin's limit per message).
pub const MAX_ADDR_PER_MESSAGE: usize = 1_000;

/// How the node came to know an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// Given with `--peer`: always kept, dialled first.
    Seed,
    /// Told by a peer in `addr`.
    Gossip,
}

#[derive(Debug, Clone)]
struct Entry {
    source: Source,
    failures: u32,
    /// Not to be dialled before this.
    next_try: Instant,
    /// When a connection to or from it last worked.
    last_seen: Option<Instant>,
}

/// Known addresses, bounded.
#[derive(Debug)]
pub struct AddressBook {
    entries: HashMap<SocketAddr, Entry>,
    capacity: usize,
    /// Our own listening address, never stored nor handed out.
    ours: Option<SocketAddr>,
}

/// Whether an address could be dialled at all.
fn dialable(addr: &SocketAddr) -> bool {
    let ip = addr.ip();
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_multicast()
}

/// Delay before the next dial after `failures` failed ones in a row.
pub fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

impl AddressBook {
    pub fn new(capacity: usize, ours: Option<SocketAddr>) -> Self {
        AddressBook {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            ours,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, addr: &SocketAddr) -> bool {
        self.entries.contains_key(addr)
    }

    /// A `--peer` seed, dialable at once.
    pub fn add_seed(&mut self, addr: SocketAddr, now: Instant) {
        self.entries.insert(
            addr,
            Entry {
                source: Source::Seed,
                failures: 0,
                next_try: now,
                last_seen: None,
            },
        );
    }

    /// Addresses a peer told us of; returns how many were new. At most
    /// [`MAX_ADDR_PER_MESSAGE`] are looked at; undialable ones and our own are skipped.
    pub fn learn(&mut self, addrs: impl IntoIterator<Item = SocketAddr>, now: Instant) -> usize {
        let mut added = 0;
        for addr in addrs.into_iter().take(MAX_ADDR_PER_MESSAGE) {
            if !dialable(&addr) || Some(addr) == self.ours || self.entries.contains_key(&addr) {
                continue;
            }
            if self.entries.len() >= self.capacity && !self.evict_one() {
                break;
            }
            self.entries.insert(
                addr,
                Entry {
                    source: Source::Gossip,
                    failures: 0,
                    next_try: now,
                    last_seen: None,
                },
            );
            added += 1;
        }
        added
    }

    /// Drop the least promising learned address that never worked; false when there is none.
    fn evict_one(&mut self) -> bool {
        let worst = self
            .entries
            .iter()
            .filter(|(_, e)| e.source == Source::Gossip && e.last_seen.is_none())
            .max_by_key(|(a, e)| (e.failures, **a))
            .map(|(a, _)| *a);
        match worst {
            Some(a) => {
                self.entries.remove(&a);
                true
            }
            None => false,
        }
    }

    /// The next address to dial: not in `skip` (connected, being dialled, or banned), due
    /// now; seeds first, then the fewest failures.
    pub fn next_to_dial(
        &self,
        now: Instant,
        skip: impl Fn(&SocketAddr) -> bool,
    ) -> Option<SocketAddr> {
        self.entries
            .iter()
            .filter(|(a, e)| e.next_try <= now && !skip(a))
            .min_by_key(|(a, e)| (e.source, e.failures, e.next_try, **a))
            .map(|(a, _)| *a)
    }

    /// A dial or a handshake with `addr` failed: wait longer before the next.
    pub fn failed(&mut self, addr: &SocketAddr, now: Instant) {
        if let Some(e) = self.entries.get_mut(addr) {
            e.failures = e.failures.saturating_add(1);
            e.next_try = now + backoff(e.failures);
        }
    }

    /// Drop `addr` (it turned out to be this node itself).
    pub fn forget(&mut self, addr: &SocketAddr) {
        self.entries.remove(addr);
    }

    /// A connection with `addr` completed its handshake: its slate is clean.
    pub fn succeeded(&mut self, addr: &SocketAddr, now: Instant) {
        if let Some(e) = self.entries.get_mut(addr) {
            e.failures = 0;
            e.next_try = now;
            e.last_seen = Some(now);
        }
    }

    /// Up to `n` addresses for a `getaddr` answer: those seen working, most recent first.
    pub fn for_gossip(&self, n: usize) -> Vec<SocketAddr> {
        let mut seen: Vec<(Instant, SocketAddr)> = self
            .entries
            .iter()
            .filter_map(|(a, e)| e.last_seen.map(|t| (t, *a)))
            .collect();
        seen.sort_by(|x, y| y.cmp(x));
        seen.into_iter().take(n).map(|(_, a)| a).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn seeds_are_dialled_first_and_failures_back_off_doubling_to_a_cap() {
        let t0 = Instant::now();
        let mut book = AddressBook::new(10, None);
        book.learn([at(2000)], t0);
        book.add_seed(at(1000), t0);
        assert_eq!(book.next_to_dial(t0, |_| false), Some(at(1000)));
        book.failed(&at(1000), t0);
        assert_eq!(book.next_to_dial(t0, |_| false), Some(at(2000)));
        book.failed(&at(2000), t0);
        assert_eq!(book.next_to_dial(t0, |_| false), None, "both wait");
        assert_eq!(
            book.next_to_dial(t0 + FIRST_BACKOFF, |_| false),
            Some(at(1000))
        );
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(3), FIRST_BACKOFF * 4);
        assert_eq!(backoff(40), MAX_BACKOFF);
        book.succeeded(&at(1000), t0);
        assert_eq!(book.next_to_dial(t0, |a| *a == at(2000)), Some(at(1000)));
    }

    #[test]
    fn a_flood_of_addr_stays_bounded_and_never_evicts_a_seed_or_a_working_peer() {
        let t0 = Instant::now();
        let mut book = AddressBook::new(4, None);
        book.add_seed(at(1), t0);
        book.learn([at(2)], t0);
        book.succeeded(&at(2), t0);
        // One message is looked at up to its limit; each new address past the capacity
        // replaces one never seen working.
        assert_eq!(book.learn((100..5000).map(at), t0), MAX_ADDR_PER_MESSAGE);
        assert_eq!(book.len(), 4);
        assert!(book.contains(&at(1)), "the seed stays");
        assert!(book.contains(&at(2)), "the working peer stays");
        let mut full = AddressBook::new(2, None);
        full.add_seed(at(1), t0);
        full.learn([at(2)], t0);
        full.succeeded(&at(2), t0);
        assert_eq!(
            full.learn([at(3)], t0),
            0,
            "nothing evictable: the new one is dropped"
        );
    }

    #[test]
    fn undialable_and_own_addresses_are_not_learned() {
        let t0 = Instant::now();
        let mut book = AddressBook::new(10, Some(at(18555)));
        let learned = book.learn(
            [
                at(0),
                SocketAddr::from(([0, 0, 0, 0], 1)),
                SocketAddr::from(([224, 0, 0, 1], 1)),
                at(18555),
                at(18556),
                at(18556),
            ],
            t0,
        );
        assert_eq!(learned, 1);
        assert!(book.contains(&at(18556)));
    }

    #[test]
    fn getaddr_is_answered_with_addresses_seen_working_most_recent_first() {
        let t0 = Instant::now();
        let mut book = AddressBook::new(10, None);
        book.learn([at(1), at(2), at(3)], t0);
        book.succeeded(&at(1), t0);
        book.succeeded(&at(3), t0 + Duration::from_secs(1));
        assert_eq!(book.for_gossip(10), vec![at(3), at(1)]);
        assert_eq!(book.for_gossip(1), vec![at(3)]);
    }
}
