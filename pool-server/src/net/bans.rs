//! The ban list: addresses refused at accept time until their ban expires, and the offence
//! counts that lead there.
//!
//! Offences (malformed lines, invalid shares, floods of stale shares) count per address, not
//! per connection, so reconnecting does not wipe the slate; an IPv6 address counts as its /64,
//! which one host usually holds whole. Past the threshold the address is banned, and a ban,
//! by a session or by an operator, ends every session from that address: sessions follow
//! [`BanList::changes`]. Accepted shares forgive offences one for one.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;

/// Most addresses with open offence counts; past it the table starts afresh (an attacker
/// with that many addresses gains a clean slate, nobody gains memory).
const MAX_OFFENDERS: usize = 100_000;
/// Most bans and lifts waiting to be told to other edges (past it the oldest are dropped:
/// those edges still ban the address on its own offences there).
const MAX_NEWS: usize = 10_000;

/// A ban or lift decided here, for the other edges of the pool.
#[derive(Debug, Clone, PartialEq)]
pub enum BanNews {
    Banned {
        ip: IpAddr,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        reason: String,
    },
    Lifted(IpAddr),
}

pub struct BanList {
    duration: Duration,
    threshold: u32,
    bans: Mutex<HashMap<IpAddr, Ban>>,
    offences: Mutex<HashMap<IpAddr, u32>>,
    changes: watch::Sender<u64>,
    /// Bans and lifts decided here since the edges last heard (kept only when shared).
    news: Mutex<Option<std::collections::VecDeque<BanNews>>>,
}

#[derive(Debug, Clone)]
struct Ban {
    until: Instant,
    since: DateTime<Utc>,
    reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BanView {
    pub ip: IpAddr,
    pub since: DateTime<Utc>,
    pub expires_in_secs: u64,
    pub reason: String,
}

/// The address offences and bans are kept under: IPv4 as is, IPv6 by its /64.
pub fn ban_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

impl BanList {
    /// Bans last `duration`; an address is banned when its offences pass `threshold`.
    pub fn new(duration: Duration, threshold: u32) -> Self {
        BanList {
            duration,
            threshold,
            bans: Mutex::new(HashMap::new()),
            offences: Mutex::new(HashMap::new()),
            changes: watch::channel(0).0,
            news: Mutex::new(None),
        }
    }

    /// Keep the bans and lifts decided here for [`BanList::take_news`] (edges that share
    /// their bans).
    pub fn share(&self) {
        self.news.lock().get_or_insert_with(Default::default);
    }

    /// Bans and lifts decided here since the last call, oldest first.
    pub fn take_news(&self) -> Vec<BanNews> {
        self.news
            .lock()
            .as_mut()
            .map(|n| n.drain(..).collect())
            .unwrap_or_default()
    }

    fn tell(&self, news: BanNews) {
        if let Some(n) = self.news.lock().as_mut() {
            if n.len() >= MAX_NEWS {
                n.pop_front();
            }
            n.push_back(news);
        }
    }

    /// A ban another edge decided, until `until`: applied here, not told again.
    pub fn apply(&self, ip: IpAddr, since: DateTime<Utc>, until: DateTime<Utc>, reason: &str) {
        let left = (until - Utc::now()).to_std().unwrap_or_default();
        if left.is_zero() {
            self.bans.lock().remove(&ban_key(ip));
            return;
        }
        self.bans.lock().insert(
            ban_key(ip),
            Ban {
                until: Instant::now() + left,
                since,
                reason: reason.to_owned(),
            },
        );
        self.changes.send_modify(|g| *g += 1);
    }

    /// Changes whenever an address is banned: sessions check whether it is theirs.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let key = ban_key(ip);
        let mut g = self.bans.lock();
        match g.get(&key) {
            Some(b) if b.until > Instant::now() => true,
            Some(_) => {
                g.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Count `n` offences against `ip`; `true` when this pushed it past the threshold and it
    /// is now banned (the caller says why in its own terms).
    pub fn offend(&self, ip: IpAddr, n: u32, reason: &str) -> bool {
        let key = ban_key(ip);
        let crossed = {
            let mut g = self.offences.lock();
            if g.len() >= MAX_OFFENDERS && !g.contains_key(&key) {
                g.clear();
            }
            let count = g.entry(key).or_insert(0);
            *count = count.saturating_add(n);
            if *count > self.threshold {
                g.remove(&key);
                true
            } else {
                false
            }
        };
        if crossed {
            self.ban(ip, reason);
        }
        crossed
    }

    /// Take back up to `n` offences of `ip` (it sent accepted shares).
    pub fn forgive(&self, ip: IpAddr, n: u32) {
        let key = ban_key(ip);
        let mut g = self.offences.lock();
        if let Some(count) = g.get_mut(&key) {
            *count = count.saturating_sub(n);
            if *count == 0 {
                g.remove(&key);
            }
        }
    }

    pub fn ban(&self, ip: IpAddr, reason: &str) {
        let since = Utc::now();
        self.bans.lock().insert(
            ban_key(ip),
            Ban {
                until: Instant::now() + self.duration,
                since,
                reason: reason.to_owned(),
            },
        );
        self.tell(BanNews::Banned {
            ip: ban_key(ip),
            since,
            until: since + chrono::Duration::from_std(self.duration).unwrap_or_default(),
            reason: reason.to_owned(),
        });
        self.changes.send_modify(|g| *g += 1);
    }

    /// Lift a ban; `false` if there was none.
    pub fn unban(&self, ip: IpAddr) -> bool {
        let lifted = self.bans.lock().remove(&ban_key(ip)).is_some();
        self.tell(BanNews::Lifted(ban_key(ip)));
        lifted
    }

    pub fn list(&self) -> Vec<BanView> {
        let now = Instant::now();
        let mut g = self.bans.lock();
        g.retain(|_, b| b.until > now);
        g.iter()
            .map(|(ip, b)| BanView {
                ip: *ip,
                since: b.since,
                expires_in_secs: b.until.duration_since(now).as_secs(),
                reason: b.reason.clone(),
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.list().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_expire() {
        let b = BanList::new(Duration::from_millis(30), 5);
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        b.ban(ip, "garbage");
        assert!(b.is_banned(ip));
        assert_eq!(b.list()[0].reason, "garbage");
        std::thread::sleep(Duration::from_millis(40));
        assert!(!b.is_banned(ip));
        b.ban(ip, "again");
        assert!(b.unban(ip));
        assert!(!b.is_banned(ip));
    }

    #[test]
    fn offences_add_up_per_address_and_accepted_shares_forgive() {
        let b = BanList::new(Duration::from_secs(60), 10);
        let changes = b.changes();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        // Five connections of 2 offences each: nobody banned yet.
        for _ in 0..5 {
            assert!(!b.offend(ip, 2, "x"));
        }
        b.forgive(ip, 3);
        assert!(!b.offend(ip, 3, "x"), "forgiven three");
        assert!(b.offend(ip, 1, "too many"));
        assert!(b.is_banned(ip));
        assert!(changes.has_changed().unwrap(), "sessions hear of the ban");
        assert!(!b.is_banned("10.1.2.4".parse().unwrap()));
    }

    #[test]
    fn an_ipv6_host_is_its_slash_64() {
        let b = BanList::new(Duration::from_secs(60), 3);
        b.offend("2001:db8:1:2::1".parse().unwrap(), 2, "x");
        assert!(b.offend("2001:db8:1:2:ffff::9".parse().unwrap(), 2, "x"));
        assert!(b.is_banned("2001:db8:1:2:abcd::1".parse().unwrap()));
        assert!(!b.is_banned("2001:db8:1:3::1".parse().unwrap()));
        assert_eq!(
            ban_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
