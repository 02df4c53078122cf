//! The shared language of the pool and the worker.
//!
//! Pool and worker must agree bit for bit on how a Stratum job becomes an 80-byte header and a
//! SHA-256d hash, and on what a difficulty means. That agreement lives here, in one crate with
//! no async runtime and no knowledge of either role, tested against real Bitcoin data.
//!
//! - [`jsonrpc`]: the line-level envelope (calls, responses, ids).
//! - [`client`] / [`server`]: the typed Stratum V1 methods each side sends.
//! - [`codec`]: newline framing with a hard line limit, for `tokio_util::codec::Framed`.
//! - [`fields`]: Stratum's hex-encoded fields as types that know their byte order.
//! - [`job`]: `mining.notify` + a miner's choices -> coinbase -> merkle root -> header.
//! - [`target`]: compact nBits, targets, difficulty, work and hashrate.
//! - [`sha256d`]: the reference hash and the compression function kernels start from.
//! - [`tls`]: how a `stratum+ssl://` client trusts the pool (system roots or a pinned certificate).

pub mod client;
pub mod codec;
pub mod error;
pub mod fields;
pub mod inbound;
pub mod job;
pub mod jsonrpc;
pub mod server;
pub mod sha256d;
pub mod target;
pub mod tls;
mod u256;

pub use bitcoin;
pub use client::{ClientRequest, Configure, Submit, VersionRollingRequest};
pub use codec::{FromLine, LineCodec, StratumCodec};
pub use error::{ErrorCode, FrameError, ParamsError, StratumError};
pub use fields::{
    account_of, Extranonce1, Extranonce2, HexBytes, JobId, Nonce, Ntime, PrevHash, SubscriptionId,
    Version, VersionMask, WorkerName,
};
pub use inbound::Inbound;
pub use job::{
    assemble_coinbase, header_bytes, header_hash, merkle_branch_for_coinbase,
    merkle_root_from_branch, Notify,
};
pub use jsonrpc::{Call, Id, Message, Response};
pub use server::{
    ConfigureResult, ServerNotification, SubscribeResult, MAX_EXTRANONCE1_LEN, MAX_EXTRANONCE2_SIZE,
};
pub use target::{
    CompactTarget, CompactTargetError, Difficulty, Hashrate, InvalidDifficulty, Target, Work,
};
