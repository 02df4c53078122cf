//! The network of pools: every pool-server on the embedded chain as a full node of one
//! peer-to-peer network, so several pools (or one operator's pools in several regions) mine
//! one chain.
//!
//! The wire is Bitcoin's: its framing and its message types from the `bitcoin` crate
//! ([`codec`]), and its `version` / `verack` handshake ([`handshake`], run on a connection by
//! [`peer`]). Nothing here speaks Stratum; blocks from peers take the same path into the chain
//! as blocks found locally, and leave it the same way. Which nodes to dial, and what to tell a
//! peer that asks, comes from the [`address_book`]; a block is relayed only the first time it is
//! [`seen`]. A peer that misbehaves is scored and banned by [`misbehaviour`]. The [`manager`]
//! keeps the peers (listener, dialer, relay of new tips); [`sync`] is the conversation with one
//! peer (headers-first catch-up, fetching announced blocks, answering, discovery); a node
//! still below the network's minimum chain work follows a peer's headers by [`presync`]
//! before it fetches a block.

pub mod address_book;
pub mod codec;
pub mod handshake;
pub mod manager;
pub mod metrics;
pub mod misbehaviour;
pub mod peer;
pub mod presync;
pub mod seen;
pub mod sync;

pub use codec::{FrameCodec, FrameError};
