//! The embedded chain's peer-to-peer network of pool-servers.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::parse::{parse_interval, parse_peer};

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Network of pools")]
pub struct P2pArgs {
    /// Embedded chain: take peer-to-peer connections from other pool-servers here
    /// (e.g. `0.0.0.0:18555`); off by default.
    #[arg(long, env = "POOL_P2P_LISTEN")]
    pub p2p_listen: Option<SocketAddr>,

    /// Embedded chain: a pool-server to peer with, `HOST:PORT` (its --p2p-listen); repeat or
    /// comma-separate for several. Peers of peers are learned from them.
    #[arg(long = "peer", env = "POOL_PEERS", value_delimiter = ',', value_parser = parse_peer)]
    pub peers: Vec<String>,

    /// Most peer connections, inbound and outbound together.
    #[arg(long, env = "POOL_MAX_PEERS", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_peers: u32,

    /// Outbound peer connections the node keeps (dialled from --peer and learned addresses).
    #[arg(long, env = "POOL_MAX_OUTBOUND", default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=1_000))]
    pub max_outbound: u32,

    /// Most inbound peer connections from one IP address.
    #[arg(long, env = "POOL_MAX_INBOUND_PER_IP", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_inbound_per_ip: u32,

    /// Ping every peer this often; one that has not answered within two intervals is dropped.
    #[arg(long, env = "POOL_P2P_PING_INTERVAL", default_value = "20s", value_parser = parse_interval)]
    pub p2p_ping_interval: Duration,

    /// A peer must finish the version handshake within this long.
    #[arg(long, env = "POOL_P2P_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = parse_interval)]
    pub p2p_handshake_timeout: Duration,
}
