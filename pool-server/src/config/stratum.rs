//! Stratum V1 listeners and what each connection may do: caps, timeouts, line length, bans,
//! extranonce sizes, version rolling, job pacing and resuming.

use std::time::Duration;

use clap::Args;
use protocol::{Difficulty, VersionMask};

use super::parse::{parse_duration, parse_interval, parse_mask, Listener};

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Stratum")]
pub struct StratumArgs {
    /// Stratum listener, `ADDR` or `ADDR=START_DIFFICULTY`; repeat (or comma-separate) for
    /// several ports with their own start difficulty.
    #[arg(
        long = "stratum",
        value_name = "STRATUM",
        env = "POOL_STRATUM",
        value_delimiter = ',',
        default_value = "0.0.0.0:3333"
    )]
    pub listeners: Vec<Listener>,

    /// Start difficulty for listeners that do not name one.
    #[arg(long, env = "POOL_START_DIFFICULTY", default_value = "0.01")]
    pub start_difficulty: Difficulty,

    /// Accounts (the part of `account.rig` before the dot) that are not addresses of the network
    /// must match this regular expression; empty means addresses only.
    #[arg(
        long,
        env = "POOL_ACCOUNT_PATTERN",
        default_value = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
    )]
    pub account_pattern: String,

    /// PEM certificate chain for Stratum over TLS (`stratum+ssl://`): with --tls-key, every
    /// Stratum port also speaks TLS (a client opening with a TLS handshake gets it). Read
    /// again on SIGHUP.
    #[arg(long, env = "POOL_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "POOL_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Bytes of extranonce1 the pool assigns per connection.
    #[arg(long, env = "POOL_EXTRANONCE1_SIZE", default_value_t = 4, value_parser = clap::value_parser!(u8).range(2..=8))]
    pub extranonce1_size: u8,

    /// Bytes of extranonce2 each miner rolls.
    #[arg(long, env = "POOL_EXTRANONCE2_SIZE", default_value_t = 8, value_parser = clap::value_parser!(u8).range(2..=16))]
    pub extranonce2_size: u8,

    /// BIP 310 version-rolling mask the pool grants (hex).
    #[arg(long, env = "POOL_VERSION_MASK", default_value = "1fffe000", value_parser = parse_mask)]
    pub version_mask: VersionMask,

    /// A fresh job (new ntime, same tip) every this often.
    #[arg(long, env = "POOL_JOB_REFRESH", default_value = "30s", value_parser = parse_interval)]
    pub job_refresh: Duration,

    /// After a difficulty change the session's job is re-issued under a new id; shares for
    /// the jobs it replaces are accepted (at their own difficulty) this long, then stale.
    #[arg(long, env = "POOL_REISSUE_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub reissue_grace: Duration,

    /// A miner that reconnects within this long and presents its subscription id (the second
    /// `mining.subscribe` parameter) resumes its session: same extranonce1, difficulty and
    /// jobs. `0` turns resuming off.
    #[arg(long, env = "POOL_RESUME_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub resume_window: Duration,

    /// Most concurrent Stratum connections.
    #[arg(long, env = "POOL_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,

    /// Most concurrent Stratum connections from one IP address.
    #[arg(long, env = "POOL_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// Load balancers (`ADDR/BITS` or one address; repeat or comma-separate) whose
    /// connections begin with a PROXY protocol header (v1 or v2, as HAProxy's `send-proxy`
    /// and `send-proxy-v2` send it): bans, per-IP caps and logs then see the miner's address.
    /// A connection from them without a valid header is closed; from anywhere else no header
    /// is read. Off by default.
    #[arg(long, env = "POOL_PROXY_PROTOCOL_FROM", value_delimiter = ',')]
    pub proxy_protocol_from: Vec<crate::net::proxy::Cidr>,

    /// Close a connection that sends nothing for this long.
    #[arg(long, env = "POOL_IDLE_TIMEOUT", default_value = "10m", value_parser = parse_interval)]
    pub idle_timeout: Duration,

    /// Close a connection that has not subscribed and authorized within this long.
    #[arg(long, env = "POOL_AUTH_TIMEOUT", default_value = "30s", value_parser = parse_interval)]
    pub auth_timeout: Duration,

    /// Longest Stratum line accepted, in bytes.
    #[arg(long, env = "POOL_MAX_LINE", default_value_t = protocol::codec::DEFAULT_MAX_LINE)]
    pub max_line: usize,

    /// Malformed lines or invalid shares a session may send before it is dropped and its IP
    /// banned. Counts decay: each accepted share forgives one.
    #[arg(long, env = "POOL_BAN_THRESHOLD", default_value_t = 50)]
    pub ban_threshold: u32,

    /// How long a ban lasts.
    #[arg(long, env = "POOL_BAN_DURATION", default_value = "10m", value_parser = parse_interval)]
    pub ban_duration: Duration,
}
