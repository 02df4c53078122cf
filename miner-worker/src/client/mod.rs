//! The Stratum V1 client: one [`session`] per connection, and [`failover`] across pools with
//! backoff, return to the primary, and `client.reconnect` handling.

pub mod failover;
pub mod session;

pub use failover::run;
