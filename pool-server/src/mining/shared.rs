//! Sessions shared between edges: a miner that a load balancer or DNS moves to another edge
//! presents its subscription id there and keeps its extranonce1 and difficulty.
//!
//! Why a trait: the channel only says what happens to its session (held, parked, gone) and
//! asks for one back at subscribe; where that is kept (PostgreSQL, for the edges of one
//! database) is the edge room's business ([`crate::edge`]), so mining depends on no store.

use std::future::Future;
use std::pin::Pin;

use protocol::{Difficulty, Extranonce1, SubscriptionId, WorkerName};

/// A session another edge (or this one, before a restart) ran, now handed to this edge.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedSession {
    pub extranonce1: Extranonce1,
    pub difficulty: Difficulty,
}

/// The answer to "may this edge carry on the session this token names?".
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Yes: the session is now this edge's.
    Granted(SharedSession),
    /// No: unknown, expired, or running on a live edge. The miner gets a fresh session.
    Refused,
    /// The directory could not answer (the database is away): only this edge's own parked
    /// sessions can be resumed.
    Unavailable,
}

pub type ClaimFuture<'a> = Pin<Box<dyn Future<Output = Claim> + Send + 'a>>;

/// Where the edges of one pool keep their sessions. The three notes are cheap and never
/// block (they are written behind the share path); a claim waits for the answer.
pub trait SessionDirectory: Send + Sync {
    /// The session runs here for `worker` (its first authorized), at this difficulty (when
    /// mining begins and at every difficulty change).
    fn held(
        &self,
        token: &SubscriptionId,
        extranonce1: &Extranonce1,
        difficulty: Difficulty,
        worker: Option<&WorkerName>,
    );
    /// The session's connection dropped: any edge may resume it within the resume window.
    fn parked(&self, token: &SubscriptionId, extranonce1: &Extranonce1, difficulty: Difficulty);
    /// The session ended for good (refused, banned, never started).
    fn gone(&self, token: &SubscriptionId);
    /// Take the session `token` names for this edge.
    fn claim<'a>(&'a self, token: &'a SubscriptionId) -> ClaimFuture<'a>;
}
