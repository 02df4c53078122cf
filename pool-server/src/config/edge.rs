//! Edges: several pool-servers of one pool on one PostgreSQL, behind one name.

use clap::Args;

use super::parse::parse_peer;
use crate::mining::EdgeId;

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Edges")]
pub struct EdgeArgs {
    /// This pool-server's id among the edges of one pool (1 to 255), when several run behind
    /// one name on one PostgreSQL: the first byte of every extranonce1 it hands out, so no two
    /// edges hand out the same one (needs --extranonce1-size 3 or more). Edges share sessions
    /// (a miner moved to another edge resumes there), bans and `/api/edges`.
    #[arg(long, env = "POOL_EDGE_ID")]
    pub edge_id: Option<EdgeId>,

    /// `HOST:PORT` where miners reach this edge's Stratum listener directly (shown in
    /// `/api/edges`; other edges send miners here when they drain). Default: the first
    /// --stratum address.
    #[arg(long, env = "POOL_EDGE_ADVERTISE", value_parser = parse_peer)]
    pub edge_advertise: Option<String>,

    /// `HOST:PORT` this edge's miners are told to reconnect to when it shuts down (for
    /// example the load balancer's name). Default: the healthy edge with the fewest sessions,
    /// else this edge's own address (miners come back after a restart).
    #[arg(long, env = "POOL_DRAIN_TO", value_parser = parse_peer)]
    pub drain_to: Option<String>,
}
