//! The Stratum V1 server: listeners, one task per connection, and the small owners of shared
//! state sessions need (extranonce allocator, ban list, account policy).

pub mod account;
pub mod bans;
pub mod extensions;
pub mod extranonce;
pub mod resume;
pub mod server;
pub mod session;
pub mod vardiff;
