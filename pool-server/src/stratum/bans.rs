//! The ban list: IP addresses refused at accept time until their ban expires.
//!
//! Sessions count offenses (malformed lines, invalid shares); past the threshold the session is
//! closed and its IP banned. Operators can list and lift bans through the admin API.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::Serialize;

pub struct BanList {
    duration: Duration,
    bans: Mutex<HashMap<IpAddr, Ban>>,
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

impl BanList {
    pub fn new(duration: Duration) -> Self {
        BanList {
            duration,
            bans: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let mut g = self.bans.lock();
        match g.get(&ip) {
            Some(b) if b.until > Instant::now() => true,
            Some(_) => {
                g.remove(&ip);
                false
            }
            None => false,
        }
    }

    pub fn ban(&self, ip: IpAddr, reason: &str) {
        self.bans.lock().insert(
            ip,
            Ban {
                until: Instant::now() + self.duration,
                since: Utc::now(),
                reason: reason.to_owned(),
            },
        );
    }

    /// Lift a ban; `false` if there was none.
    pub fn unban(&self, ip: IpAddr) -> bool {
        self.bans.lock().remove(&ip).is_some()
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
        let b = BanList::new(Duration::from_millis(30));
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
}
