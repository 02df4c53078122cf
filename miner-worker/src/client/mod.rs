//! The Stratum V1 client: one [`session`] per connection, and [`failover`] across pools with
//! backoff, return to the primary, and `client.reconnect` handling.

pub mod failover;
pub mod log_limit;
pub mod pool_text;
pub mod session;
pub mod state;
pub mod submit_cap;

pub use failover::run;
