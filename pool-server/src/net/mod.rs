//! What every listener shares, whatever it speaks: address bans, connection caps, and an
//! accept loop that survives running out of descriptors, and the PROXY protocol a load
//! balancer speaks. TLS will live here.

pub mod accept;
pub mod bans;
pub mod limits;
pub mod proxy;
pub mod tls;

pub use accept::accept;
pub use bans::{ban_key, BanList};
pub use limits::{ConnectionLimits, ConnectionSlot};
