//! The Stratum V1 transport: the listener, one task per connection speaking V1's JSON lines
//! (method names, ids, error codes), and the extensions it answers. What a miner's mining
//! is (difficulty, jobs, shares) lives in [`crate::mining`], which any transport drives.

pub mod extensions;
pub mod server;
pub mod session;
