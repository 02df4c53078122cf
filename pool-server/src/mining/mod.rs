//! One miner's mining, whatever protocol it speaks: the rules of a channel (difficulty and
//! vardiff, which jobs went out at which target, submit -> validate -> record, the reject
//! allowance, resume and park) and the small owners of state every channel shares (the
//! extranonce1 allocator, the resume table, the account policy). Transports (Stratum V1 in
//! [`crate::stratum`], V2 to come) parse their wire and drive a [`Channel`]; a worker is one
//! worker whatever it speaks.

pub mod account;
pub mod allowance;
pub mod channel;
pub mod context;
pub mod edge_id;
pub mod extranonce;
pub mod resume;
pub mod shared;
pub mod submit;
pub mod tally;
pub mod vardiff;

pub use channel::{Channel, NoExtranonce, Refused, ToMiner, MAX_WORKERS};
pub use context::MiningContext;
pub use edge_id::EdgeId;
pub use shared::{Claim, SessionDirectory, SharedSession};
