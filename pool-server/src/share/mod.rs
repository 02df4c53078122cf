//! Judging shares: the pure validator, the per-session duplicate filter, and the reasons a
//! share can be refused, in Stratum's codes.

pub mod dedup;
pub mod reject;
pub mod validate;

pub use dedup::Dedup;
pub use reject::Reject;
pub use validate::{validate, Accepted, IssuedJob, ShareContext};
