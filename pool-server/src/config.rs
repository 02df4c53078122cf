//! Everything an operator can set: one clap flag each, each with an environment variable, and
//! an optional TOML config file whose keys are the long flag names.
//!
//! Precedence is command line, then environment, then config file, then the default. The file
//! is applied by exporting each of its keys as the flag's environment variable when that
//! variable is unset, so the three sources cannot drift apart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser};
use protocol::{CompactTarget, Difficulty, VersionMask};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "pool-server",
    version,
    about = "Stratum V1 mining pool",
    args_override_self = true
)]
pub struct Config {
    /// TOML file whose keys are long flag names (`http = "0.0.0.0:8080"`); flags and
    /// environment variables override it.
    #[arg(long, env = "POOL_CONFIG")]
    pub config: Option<PathBuf>,

    /// Stratum listener, `ADDR` or `ADDR=START_DIFFICULTY`; repeat (or comma-separate) for
    /// several ports with their own start difficulty.
    #[arg(
        long = "stratum",
        env = "POOL_STRATUM",
        value_delimiter = ',',
        default_value = "0.0.0.0:3333"
    )]
    pub stratum: Vec<Listener>,

    /// Start difficulty for listeners that do not name one.
    #[arg(long, env = "POOL_START_DIFFICULTY", default_value = "0.01")]
    pub start_difficulty: Difficulty,

    /// HTTP address for the API, the dashboard and /metrics.
    #[arg(long, env = "POOL_HTTP", default_value = "0.0.0.0:8080")]
    pub http: SocketAddr,

    /// Share store: `sqlite://FILE` (embedded default) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://pool.sqlite")]
    pub database_url: String,

    /// Directory of the append-only spool that holds shares while the database is away.
    #[arg(long, env = "POOL_SPOOL_DIR", default_value = "spool")]
    pub spool_dir: PathBuf,

    /// Bitcoin network for payout and account address checks.
    #[arg(long, env = "POOL_NETWORK", default_value = "regtest")]
    pub network: bitcoin::Network,

    /// Address the coinbase pays.
    #[arg(long, env = "POOL_PAYOUT_ADDRESS")]
    pub payout_address: Option<String>,

    /// Raw output script (hex) the coinbase pays, instead of an address.
    #[arg(long, env = "POOL_PAYOUT_SCRIPT", conflicts_with = "payout_address")]
    pub payout_script: Option<String>,

    /// Tag written into every coinbase scriptSig.
    #[arg(long, env = "POOL_TAG", default_value = "/rust-pool/")]
    pub pool_tag: String,

    /// Accounts (the part of `account.rig` before the dot) that are not addresses of the network
    /// must match this regular expression; empty means addresses only.
    #[arg(
        long,
        env = "POOL_ACCOUNT_PATTERN",
        default_value = "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
    )]
    pub account_pattern: String,

    /// JSON-RPC URL of a Bitcoin-compatible node (`http://127.0.0.1:8332`). When set, work
    /// comes from its `getblocktemplate` and found blocks go to its `submitblock`, instead of
    /// the embedded chain.
    #[arg(long, env = "POOL_NODE_RPC_URL")]
    pub node_rpc_url: Option<String>,

    /// Node RPC user (with --node-rpc-password).
    #[arg(long, env = "POOL_NODE_RPC_USER")]
    pub node_rpc_user: Option<String>,

    /// Node RPC password. Never logged.
    #[arg(long, env = "POOL_NODE_RPC_PASSWORD", hide_env_values = true)]
    pub node_rpc_password: Option<String>,

    /// The node's cookie file (`.cookie` in its data directory), instead of user and password.
    #[arg(long, env = "POOL_NODE_RPC_COOKIE")]
    pub node_rpc_cookie: Option<PathBuf>,

    /// The node's ZMQ `hashblock` publisher (`tcp://127.0.0.1:28332`, the node's
    /// `-zmqpubhashblock`): new tips arrive the moment the node has them.
    #[arg(long, env = "POOL_NODE_ZMQ")]
    pub node_zmq: Option<String>,

    /// Do not use the node's long polling (rely on ZMQ and polling).
    #[arg(long, env = "POOL_NODE_NO_LONGPOLL")]
    pub node_no_longpoll: bool,

    /// Best-block poll interval when the node does not offer long polling.
    #[arg(long, env = "POOL_NODE_POLL", default_value = "500ms", value_parser = parse_interval)]
    pub node_poll: Duration,

    /// Fetch a fresh template (new transactions) at least this often.
    #[arg(long, env = "POOL_NODE_TEMPLATE_REFRESH", default_value = "30s", value_parser = parse_interval)]
    pub node_template_refresh: Duration,

    /// While the node is unreachable, serve the last template for this long, then mark it stale.
    #[arg(long, env = "POOL_NODE_TEMPLATE_MAX_AGE", default_value = "120s", value_parser = parse_interval)]
    pub node_template_max_age: Duration,

    /// Embedded chain: nBits of the genesis block (hex); the default suits one laptop worker
    /// finding a block about every 30 s.
    #[arg(long, env = "POOL_GENESIS_BITS", default_value = "1d01fffe", value_parser = parse_compact)]
    pub genesis_bits: CompactTarget,

    /// Embedded chain: the network's name. With --genesis-bits it makes the genesis block, so
    /// pool-servers given the same two hold the same chain (and can peer); another name is
    /// another chain.
    #[arg(long, env = "POOL_P2P_NETWORK", default_value = "rust-pool", value_parser = parse_network_name)]
    pub p2p_network: String,

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

    /// Embedded chain: the block time difficulty retargeting aims at.
    #[arg(long, env = "POOL_BLOCK_TIME", default_value = "30s", value_parser = parse_interval)]
    pub block_time: Duration,

    /// Embedded chain: retarget every N blocks (Bitcoin: 2016), clamped to x4 either way.
    #[arg(long, env = "POOL_RETARGET_INTERVAL", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub retarget_interval: u32,

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

    /// Vardiff: share interval each session is steered toward. Short, as ckpool's 0.3
    /// shares a second: a hashrate read from N shares is off by about 1/sqrt(N), so 3 s gives
    /// 100 shares (+-10 %) in a 5-minute window where 10 s gives 30 (+-18 %).
    #[arg(long, env = "POOL_VARDIFF_TARGET", default_value = "3s", value_parser = parse_interval)]
    pub vardiff_target: Duration,

    /// Vardiff: how often a session's difficulty is reconsidered.
    #[arg(long, env = "POOL_VARDIFF_RETARGET", default_value = "30s", value_parser = parse_interval)]
    pub vardiff_retarget: Duration,

    /// Vardiff: relative deviation from the target interval tolerated without a change.
    #[arg(long, env = "POOL_VARDIFF_VARIANCE", default_value_t = 0.3)]
    pub vardiff_variance: f64,

    /// After a difficulty change the session's job is re-issued under a new id; shares for
    /// the jobs it replaces are accepted (at their own difficulty) this long, then stale.
    #[arg(long, env = "POOL_REISSUE_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub reissue_grace: Duration,

    /// A miner that reconnects within this long and presents its subscription id (the second
    /// `mining.subscribe` parameter) resumes its session: same extranonce1, difficulty and
    /// jobs. `0` turns resuming off.
    #[arg(long, env = "POOL_RESUME_WINDOW", default_value = "10m", value_parser = parse_duration)]
    pub resume_window: Duration,

    /// Vardiff: lowest difficulty.
    #[arg(long, env = "POOL_VARDIFF_MIN", default_value = "0.001")]
    pub vardiff_min: Difficulty,

    /// Vardiff: highest difficulty.
    #[arg(long, env = "POOL_VARDIFF_MAX", default_value = "1e15")]
    pub vardiff_max: Difficulty,

    /// Most concurrent Stratum connections.
    #[arg(long, env = "POOL_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,

    /// Most concurrent Stratum connections from one IP address.
    #[arg(long, env = "POOL_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

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

    /// Store: shares per database write.
    #[arg(long, env = "POOL_STORE_BATCH", default_value_t = 2000)]
    pub store_batch: usize,

    /// Store: longest a share waits before its batch is written.
    #[arg(long, env = "POOL_STORE_FLUSH", default_value = "250ms", value_parser = parse_interval)]
    pub store_flush: Duration,

    /// Store: shares queued between sessions and the writer (bounded memory).
    #[arg(long, env = "POOL_STORE_QUEUE", default_value_t = 200_000)]
    pub store_queue: usize,

    /// How long raw shares are kept (PostgreSQL drops whole days past it; SQLite deletes).
    #[arg(long, env = "POOL_SHARE_RETENTION", default_value = "7d", value_parser = parse_interval)]
    pub share_retention: Duration,

    /// How long the per-minute rollups are kept (they serve ranges up to 24 h).
    #[arg(long, env = "POOL_MINUTE_ROLLUP_RETENTION", default_value = "8d", value_parser = parse_interval)]
    pub minute_rollup_retention: Duration,

    /// How long the hourly rollups are kept (they serve 7 d, 30 d and 1 y).
    #[arg(long, env = "POOL_ROLLUP_RETENTION", default_value = "400d", value_parser = parse_interval)]
    pub rollup_retention: Duration,

    /// How each found block's reward is shared among accounts: `pplns` (the last
    /// --pplns-window x network difficulty of accepted work), `prop` (the work since the
    /// pool's previous block) or `solo` (the finder's account).
    #[arg(long, env = "POOL_REWARD_SCHEME", value_enum, default_value = "pplns")]
    pub reward_scheme: crate::rewards::Scheme,

    /// PPLNS window, in multiples of the block's network difficulty.
    #[arg(long, env = "POOL_PPLNS_WINDOW", default_value_t = 2.0, value_parser = parse_window)]
    pub pplns_window: f64,

    /// The pool's fee, in percent of each block's reward (`1`, `0.9`, `1.5%`; at most two
    /// decimals).
    #[arg(long, env = "POOL_FEE", default_value = "0", value_parser = parse_fee)]
    pub pool_fee: FeeBps,

    /// Confirmations before a block's credits are mature (paid out): on a node, its
    /// `getblock` confirmations; on the embedded chain, the block's depth.
    #[arg(long, env = "POOL_MATURITY", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub maturity: u32,

    /// How long after a block is found its credits are computed, so shares still on their way
    /// from other pool-servers on the same database are counted.
    #[arg(long, env = "POOL_CREDIT_DELAY", default_value = "10s", value_parser = parse_duration)]
    pub credit_delay: Duration,

    /// How balances are paid: `none` (kept and shown), `wallet` (the node's wallet pays
    /// them with `sendmany`; needs --node-rpc-url and a wallet holding the coinbases) or
    /// `coinbase` (every job's coinbase pays the window's accounts directly; needs
    /// --pool-fee-address; not with --reward-scheme solo).
    #[arg(long, env = "POOL_PAYOUT_METHOD", value_enum, default_value = "none")]
    pub payout_method: crate::rewards::PayoutMethod,

    /// Wallet payouts: how often due balances are paid.
    #[arg(long, env = "POOL_PAYOUT_INTERVAL", default_value = "10m", value_parser = parse_interval)]
    pub payout_interval: Duration,

    /// Wallet payouts: smallest balance paid, in coins (`0.01`); smaller ones wait.
    #[arg(long, env = "POOL_PAYOUT_THRESHOLD", default_value = "0.01", value_parser = parse_coins)]
    pub payout_threshold: bitcoin::Amount,

    /// Wallet payouts: the node's wallet to pay from, when it has several loaded.
    #[arg(long, env = "POOL_NODE_WALLET")]
    pub node_wallet: Option<String>,

    /// Coinbase payouts: the pool's own output (the fee, and what is not paid out: dust,
    /// accounts without an address, past --max-coinbase-outputs), an address of --network.
    #[arg(long, env = "POOL_POOL_FEE_ADDRESS")]
    pub pool_fee_address: Option<String>,

    /// Coinbase payouts: no output below this, in coins; the amount waits as balance and is
    /// carried into a later coinbase.
    #[arg(long, env = "POOL_DUST_LIMIT", default_value = "0.0001", value_parser = parse_coins)]
    pub dust_limit: bitcoin::Amount,

    /// Coinbase payouts: at most this many account outputs per coinbase (the largest); the
    /// rest wait as balance. Some mining firmware limits the coinbase's size.
    #[arg(long, env = "POOL_MAX_COINBASE_OUTPUTS", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub max_coinbase_outputs: u32,

    /// Coinbase payouts: how often the window is read again from the store (also at every
    /// new block).
    #[arg(long, env = "POOL_PLAN_INTERVAL", default_value = "15s", value_parser = parse_interval)]
    pub plan_interval: Duration,

    /// Coinbase payouts: a new read of the window rebuilds the job when an output moves by at
    /// least this much of the reward, in percent (or when accounts gain or lose an output).
    #[arg(long, env = "POOL_COINBASE_REBUILD_CHANGE", default_value = "1", value_parser = parse_fee)]
    pub coinbase_rebuild_change: FeeBps,

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

    /// Log as JSON lines (for ELK or Loki) instead of human-readable text.
    #[arg(long, env = "POOL_LOG_JSON")]
    pub log_json: bool,

    /// Log filter, e.g. `info` or `pool_server=debug`.
    #[arg(long, env = "POOL_LOG", default_value = "info")]
    pub log: String,
}

/// A fee in basis points (1/100 of a percent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeBps(pub u32);

fn parse_fee(s: &str) -> Result<FeeBps, String> {
    let t = s.trim().trim_end_matches('%').trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(frac.is_empty() || digits(frac)) || frac.len() > 2 {
        return Err(format!(
            "{s:?} is not a fee in percent with at most two decimals (like 1, 0.9 or 1.5%)"
        ));
    }
    let bps = whole
        .parse::<u64>()
        .ok()
        .and_then(|w| w.checked_mul(100))
        .and_then(|w| w.checked_add(format!("{frac:0<2}").parse::<u64>().unwrap_or(0)))
        .filter(|b| *b <= 10_000)
        .ok_or_else(|| format!("{s:?}: a fee is at most 100%"))?;
    Ok(FeeBps(bps as u32))
}

fn parse_window(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 1e6 => Ok(v),
        _ => Err(format!(
            "{s:?}: the window is a positive multiple of the network difficulty (like 2)"
        )),
    }
}

fn parse_coins(s: &str) -> Result<bitcoin::Amount, String> {
    bitcoin::Amount::from_str_in(s.trim(), bitcoin::Denomination::Bitcoin)
        .map_err(|e| format!("{s:?} is not an amount in coins (like 0.01): {e}"))
}

/// One Stratum listening address with its start difficulty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Listener {
    pub addr: SocketAddr,
    pub start_difficulty: Option<Difficulty>,
}

impl FromStr for Listener {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, diff) = match s.split_once('=') {
            Some((a, d)) => (a, Some(d.parse::<Difficulty>()?)),
            None => (s, None),
        };
        let addr = addr
            .trim()
            .parse()
            .map_err(|e| format!("listener {addr:?}: {e} (expected IP:PORT)"))?;
        Ok(Listener {
            addr,
            start_difficulty: diff,
        })
    }
}

/// `500ms`, `30s`, `10m`, `1h`, `7d`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map_or((s, ""), |i| (&s[..i], &s[i..]));
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (like 500ms, 30s, 10m, 1h, 7d)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "" | "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        "d" => v * 86_400.0,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use ms, s, m, h or d)"
            ))
        }
    };
    let d = Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("{s:?} is out of range for a duration"))?;
    // Every duration is added to a clock reading somewhere: beyond a century that could
    // overflow, and no setting of a pool means it.
    if d > LONGEST {
        return Err(format!("{s:?}: at most 36500d"));
    }
    Ok(d)
}

/// The longest duration any flag takes: a century.
const LONGEST: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A duration that paces or bounds something: zero would spin a timer or end at once.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?}: must be longer than zero"));
    }
    Ok(d)
}

fn parse_u32_hex(s: &str) -> Result<u32, String> {
    let t = s.trim().trim_start_matches("0x");
    if t.is_empty() || t.len() > 8 {
        return Err(format!("{s:?} is not a 32-bit hex value"));
    }
    u32::from_str_radix(t, 16).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_compact(s: &str) -> Result<CompactTarget, String> {
    let c = CompactTarget::from_consensus(parse_u32_hex(s)?);
    c.to_target().map_err(|e| e.to_string())?;
    Ok(c)
}

/// `HOST:PORT`, with a port that is a number (the host is resolved when the pool starts).
fn parse_peer(s: &str) -> Result<String, String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not HOST:PORT"))?;
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!(
            "{s:?} is not HOST:PORT with a port from 1 to 65535"
        ));
    }
    Ok(s.to_owned())
}

fn parse_network_name(s: &str) -> Result<String, String> {
    crate::chain::genesis::check_network_name(s).map_err(|e| e.to_string())?;
    Ok(s.to_owned())
}

fn parse_mask(s: &str) -> Result<VersionMask, String> {
    parse_u32_hex(s).map(VersionMask)
}

impl Config {
    /// Parse the command line, environment and (when named) the config file.
    ///
    /// `--help` and `--version` print and exit 0, and a bad flag exits 2 with clap's own
    /// message, as every command-line tool does; a bad config file or inconsistent values are
    /// returned as errors.
    pub fn load() -> anyhow::Result<Config> {
        let args: Vec<String> = std::env::args().collect();
        Self::load_from(args).map_err(|e| match e.downcast::<clap::Error>() {
            Ok(clap_error) => clap_error.exit(),
            Err(other) => other,
        })
    }

    pub fn load_from<I, T>(args: I) -> anyhow::Result<Config>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let first = Config::try_parse_from(&args)?;
        if let Some(path) = &first.config {
            apply_config_file(path)?;
            let cfg = Config::try_parse_from(&args)?;
            cfg.check()?;
            return Ok(cfg);
        }
        first.check()?;
        Ok(first)
    }

    /// Cross-field checks clap cannot express.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.vardiff_min > self.vardiff_max {
            bail!("--vardiff-min must not exceed --vardiff-max");
        }
        if !(0.0..1.0).contains(&self.vardiff_variance) {
            bail!("--vardiff-variance must be in [0, 1)");
        }
        if self.vardiff_target < Duration::from_millis(50) {
            bail!("--vardiff-target must be at least 50ms: no miner's shares are steered finer");
        }
        if self.vardiff_retarget < Duration::from_millis(100) {
            bail!("--vardiff-retarget must be at least 100ms: a retarget needs shares to read");
        }
        if self.job_refresh < Duration::from_millis(100) {
            bail!("--job-refresh must be at least 100ms: faster, a miner's shares go stale before they arrive");
        }
        if !(1..=10_000_000).contains(&self.max_connections)
            || !(1..=10_000_000).contains(&self.max_connections_per_ip)
        {
            bail!("--max-connections and --max-connections-per-ip must be 1 to 10000000");
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_line) {
            bail!("--max-line must be 1024 bytes to 16 MiB: a mining.notify with a merkle branch is longer than 1 KiB, and a session holds a line in memory");
        }
        if self
            .api_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            bail!("--api-token (POOL_API_TOKEN) is empty: set a secret, or unset it to keep the admin endpoints off");
        }
        if self.store_batch == 0 || self.store_queue == 0 {
            bail!("--store-batch and --store-queue must be positive");
        }
        if !self.account_pattern.is_empty() {
            regex::Regex::new(&self.account_pattern).context("--account-pattern")?;
        }
        if self.pool_tag.len() > 40 {
            bail!("--pool-tag must be at most 40 bytes (the coinbase scriptSig holds 100)");
        }
        if self.node_rpc_url.is_some()
            && self.node_rpc_cookie.is_none()
            && (self.node_rpc_user.is_none() != self.node_rpc_password.is_none())
        {
            bail!("--node-rpc-user and --node-rpc-password go together (or use --node-rpc-cookie)");
        }
        if self.stratum.is_empty() {
            bail!("at least one --stratum listener is required");
        }
        if self.node_rpc_url.is_some() && (self.p2p_listen.is_some() || !self.peers.is_empty()) {
            bail!("--p2p-listen and --peer network the embedded chain; with --node-rpc-url the node does its own peering");
        }
        if self.payout_method == crate::rewards::PayoutMethod::Wallet && self.node_rpc_url.is_none()
        {
            bail!("--payout-method wallet pays from the node's wallet: it needs --node-rpc-url");
        }
        if self.payout_method == crate::rewards::PayoutMethod::Coinbase {
            if self.reward_scheme == crate::rewards::Scheme::Solo {
                bail!("--payout-method coinbase pays the window's accounts in every job, but under --reward-scheme solo the payee is only known once a block is found: use --payout-method wallet or none");
            }
            if self.pool_fee_address.is_none() {
                bail!("--payout-method coinbase needs --pool-fee-address: the pool's own output (fee, dust, accounts without an address)");
            }
        }
        if self.max_outbound > self.max_peers {
            bail!("--max-outbound must not exceed --max-peers");
        }
        Ok(())
    }
}

/// Export each key of the TOML file as its flag's environment variable, unless already set.
fn apply_config_file(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
    let cmd = Config::command();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let Some(arg) = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
        else {
            bail!("config file {}: unknown key {key:?}", path.display());
        };
        let env = arg
            .get_env()
            .and_then(|e| e.to_str())
            .expect("every flag has an env var");
        if std::env::var_os(env).is_some() {
            continue;
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        };
        // SAFETY: called once at start-up, before any other thread exists.
        unsafe { std::env::set_var(env, text) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_an_env_var() {
        for arg in Config::command().get_arguments() {
            if arg.get_id() == "help" || arg.get_id() == "version" {
                continue;
            }
            assert!(arg.get_env().is_some(), "--{} has no env var", arg.get_id());
        }
    }

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("-3s").is_err());
        let huge = parse_duration("99999999999999999999h").unwrap_err();
        assert!(huge.contains("out of range"), "{huge}");
    }

    #[test]
    fn a_zero_interval_is_refused_at_parse_time() {
        for flag in [
            "--vardiff-retarget",
            "--vardiff-target",
            "--job-refresh",
            "--idle-timeout",
            "--store-flush",
            "--node-poll",
        ] {
            let err = Config::try_parse_from(["pool-server", flag, "0"])
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&flag[2..]) && err.contains("longer than zero"),
                "{err}"
            );
        }
        // Zero still means "off" where the flag says so.
        assert!(Config::try_parse_from(["pool-server", "--resume-window", "0"]).is_ok());
    }

    #[test]
    fn an_empty_api_token_is_a_configuration_error() {
        for token in ["", "  "] {
            let cfg = Config::try_parse_from(["pool-server", "--api-token", token]).unwrap();
            let err = cfg.check().unwrap_err().to_string();
            assert!(err.contains("--api-token"), "{err}");
        }
    }

    #[test]
    fn fees_are_percent_with_two_decimals_at_most() {
        assert_eq!(parse_fee("1"), Ok(FeeBps(100)));
        assert_eq!(parse_fee("0.9"), Ok(FeeBps(90)));
        assert_eq!(parse_fee("1.25%"), Ok(FeeBps(125)));
        assert_eq!(parse_fee("100"), Ok(FeeBps(10_000)));
        for bad in [
            "100.01",
            "-1",
            "1.234",
            "",
            "x",
            "1e2",
            "99999999999999999999",
        ] {
            assert!(parse_fee(bad).is_err(), "{bad}");
        }
        let err = Config::try_parse_from(["pool-server", "--payout-method", "wallet"])
            .unwrap()
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--node-rpc-url"), "{err}");
        let coinbase = |extra: &[&str]| {
            let mut args = vec!["pool-server", "--payout-method", "coinbase"];
            args.extend_from_slice(extra);
            Config::try_parse_from(args).unwrap().check()
        };
        let err = coinbase(&[]).unwrap_err().to_string();
        assert!(err.contains("--pool-fee-address"), "{err}");
        let fee = [
            "--pool-fee-address",
            "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        ];
        let err = coinbase(&[&fee[..], &["--reward-scheme", "solo"]].concat())
            .unwrap_err()
            .to_string();
        assert!(err.contains("solo"), "{err}");
        assert!(coinbase(&fee).is_ok());
        assert!(Config::try_parse_from(["pool-server", "--max-coinbase-outputs", "0"]).is_err());
        assert!(Config::try_parse_from(["pool-server", "--pplns-window", "0"]).is_err());
        assert!(Config::try_parse_from(["pool-server", "--payout-threshold", "lots"]).is_err());
    }

    #[test]
    fn listeners_carry_their_own_start_difficulty() {
        let l: Listener = "127.0.0.1:3334=512".parse().unwrap();
        assert_eq!(l.start_difficulty.unwrap().as_f64(), 512.0);
        assert!("nonsense".parse::<Listener>().is_err());
        assert!("127.0.0.1:1=0".parse::<Listener>().is_err());
    }

    #[test]
    fn bad_values_are_refused_with_the_flag_named() {
        let err = Config::try_parse_from(["pool-server", "--genesis-bits", "04923456"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("genesis-bits") && err.contains("negative"),
            "{err}"
        );
        let err = Config::try_parse_from(["pool-server", "--extranonce2-size", "1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("extranonce2-size"), "{err}");
    }
}
