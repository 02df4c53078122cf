//! The API, dashboard and /metrics listener and its limits.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::parse::parse_interval;

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "HTTP")]
pub struct HttpArgs {
    /// HTTP address for the API, the dashboard and /metrics.
    #[arg(
        long = "http",
        value_name = "HTTP",
        env = "POOL_HTTP",
        default_value = "0.0.0.0:8080"
    )]
    pub listen: SocketAddr,

    /// Token required by endpoints that change state (mempool feed, bans). Those endpoints
    /// are off when unset. Never logged.
    #[arg(long, env = "POOL_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,

    /// Most concurrent HTTP connections (API, dashboard, /metrics).
    #[arg(long, env = "POOL_HTTP_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections: u32,

    /// Most concurrent HTTP connections from one IP address.
    #[arg(long, env = "POOL_HTTP_MAX_CONNECTIONS_PER_IP", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_max_connections_per_ip: u32,

    /// An HTTP client must send a request's headers within this long, and may sit idle
    /// between requests no longer.
    #[arg(long, env = "POOL_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_interval)]
    pub http_header_timeout: Duration,
}
