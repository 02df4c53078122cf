//! Caps on concurrent connections, shared by every listener (Stratum, HTTP, and the ones to
//! come): one owner of the counts, so no listener can be walked past its cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

/// Caps on concurrent connections, in total and per address, where an address is counted as
/// bans count it ([`super::bans::ban_key`]: IPv4 as is, IPv6 by its /64), so a host with a
/// /64 of its own cannot walk past the cap one address at a time.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One counted connection; uncounted on drop.
pub struct ConnectionSlot {
    ip: IpAddr,
    limits: Arc<ConnectionLimits>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut g = self.limits.state.lock();
        g.0 -= 1;
        if let Some(n) = g.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_ip,
            state: Mutex::new((0, HashMap::new())),
        })
    }

    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, &'static str> {
        let ip = super::bans::ban_key(ip);
        let mut g = self.state.lock();
        if g.0 >= self.max_total {
            return Err("max-connections");
        }
        let per_ip = g.1.entry(ip).or_insert(0);
        if *per_ip >= self.max_per_ip {
            return Err("max-connections-per-ip");
        }
        *per_ip += 1;
        g.0 += 1;
        Ok(ConnectionSlot {
            ip,
            limits: self.clone(),
        })
    }
}
