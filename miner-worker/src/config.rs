//! The worker's flags, each with an environment variable (`MINER_POOL`, `WALLET_ADDRESS`,
//! `CPU_THREADS` among them), for running the same binary on many machines from one
//! environment file.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::Parser;
use protocol::Difficulty;

use crate::placement::{CpuPriority, CpuSet, Placement};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "miner-worker",
    version,
    about = "Stratum V1 SHA-256d CPU miner",
    args_override_self = true
)]
pub struct Config {
    /// Pool URL (`stratum+tcp://host:port`, or `stratum+ssl://host:port` over TLS); repeat or
    /// comma-separate for failover, in order of preference. The first is the primary the
    /// worker returns to.
    #[arg(
        short = 'o',
        long = "url",
        env = "MINER_POOL",
        value_delimiter = ',',
        required_unless_present = "benchmark"
    )]
    pub pools: Vec<PoolUrl>,

    /// For `stratum+ssl://` pools: trust exactly the certificate in this PEM file (a pool's
    /// self-signed one) instead of the system's root authorities.
    #[arg(long, env = "MINER_TLS_PIN")]
    pub tls_pin: Option<std::path::PathBuf>,

    /// Login, usually `payout-address.rig` (or `account.rig`).
    #[arg(short = 'u', long = "user", env = "WALLET_ADDRESS", default_value = "")]
    pub user: String,

    /// Rig name appended as `.rig` when the login has none.
    #[arg(long = "rig", env = "MINER_RIG")]
    pub rig: Option<String>,

    /// Password; pools often read `d=DIFF` from it.
    #[arg(
        short = 'p',
        long = "pass",
        env = "MINER_PASSWORD",
        default_value = "x",
        hide_env_values = true
    )]
    pub password: String,

    /// Mining threads (default: every core).
    #[arg(short = 't', long, env = "CPU_THREADS")]
    pub threads: Option<usize>,

    /// CPU priority of the mining threads, on cpuminer's scale: 0 idle (runs only on otherwise
    /// idle CPU time: the machine's own work never waits), 1 lowest (nice 19), 2 normal, up to
    /// 5 highest (3-5 need CAP_SYS_NICE).
    #[arg(long, env = "MINER_CPU_PRIORITY", default_value = "0")]
    pub cpu_priority: CpuPriority,

    /// Pin mining thread i to the i-th CPU of this set, round robin: a hex mask (0x3) or a
    /// list (0,2-3). Off by default (the kernel's scheduler places them).
    #[arg(long, env = "MINER_CPU_AFFINITY")]
    pub cpu_affinity: Option<CpuSet>,

    /// Search kernel: `auto` (fastest by measurement at start) or a name from --benchmark.
    #[arg(long, env = "MINER_KERNEL", default_value = "auto")]
    pub kernel: String,

    /// Benchmark offline and exit: `--benchmark` (quick: the calibrated kernel and close
    /// contenders, about ten seconds) or `--benchmark=full` (every kernel and the SHA-NI bounds).
    #[arg(
        long,
        env = "MINER_BENCHMARK",
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "quick"
    )]
    pub benchmark: Option<crate::bench::Mode>,

    /// Seconds per run of `--benchmark=full` (each figure is the median of five).
    #[arg(long, env = "MINER_BENCH_SECS", default_value_t = 1.0)]
    pub bench_secs: f64,

    /// Ask the pool for this start difficulty (`mining.suggest_difficulty`).
    #[arg(long, env = "MINER_SUGGEST_DIFFICULTY")]
    pub suggest_difficulty: Option<Difficulty>,

    /// Do not ask for BIP 310 version rolling.
    #[arg(long, env = "MINER_NO_VERSION_ROLLING")]
    pub no_version_rolling: bool,

    /// Send `mining.extranonce.subscribe` (pools may then change extranonce1 mid-session).
    #[arg(long, env = "MINER_EXTRANONCE_SUBSCRIBE")]
    pub extranonce_subscribe: bool,

    /// Hosts a pool's `client.reconnect` may send the worker to, besides the pool's own host
    /// (comma-separated; `*` for any). Others are ignored and logged: anyone on the path of
    /// a clear-text connection could otherwise send a fleet to their own pool.
    #[arg(long, env = "MINER_ALLOW_REDIRECT", value_delimiter = ',')]
    pub allow_redirect: Vec<String>,

    /// Shares submitted per second at most. A pool whose difficulty would give more is mined
    /// at a floor of about a quarter of this, and what still comes over is dropped and
    /// counted (`miner_shares_dropped_total`).
    #[arg(long, env = "MINER_MAX_SHARE_RATE", default_value_t = 100.0, value_parser = parse_rate)]
    pub max_share_rate: f64,

    /// Connect, response and write timeout.
    #[arg(long, env = "MINER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Longest wait between reconnection attempts (backoff doubles up to this, with jitter).
    #[arg(long, env = "MINER_RETRY_MAX", default_value = "8s", value_parser = parse_duration)]
    pub retry_max: Duration,

    /// While on a backup pool, try the primary again this often.
    #[arg(long, env = "MINER_FAILBACK_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub failback_interval: Duration,

    /// Reconnect when the pool sends nothing for this long.
    #[arg(long, env = "MINER_IDLE_TIMEOUT", default_value = "180s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Print a status line this often.
    #[arg(long, env = "MINER_STATUS_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub status_interval: Duration,

    /// Serve Prometheus metrics on this address (off by default).
    #[arg(long, env = "MINER_METRICS")]
    pub metrics: Option<SocketAddr>,

    /// Log as JSON lines.
    #[arg(long, env = "MINER_LOG_JSON")]
    pub log_json: bool,

    /// Log filter.
    #[arg(long, env = "MINER_LOG", default_value = "info")]
    pub log: String,
}

impl Config {
    /// The login sent in `mining.authorize`.
    pub fn login(&self) -> String {
        match &self.rig {
            Some(rig) if !self.user.contains('.') => format!("{}.{rig}", self.user),
            _ => self.user.clone(),
        }
    }

    pub fn placement(&self) -> Placement {
        Placement {
            priority: self.cpu_priority,
            affinity: self.cpu_affinity.clone(),
        }
    }

    pub fn thread_count(&self) -> usize {
        self.threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    }
}

/// `stratum+tcp://host:port` (or plain `host:port`), or `stratum+ssl://host:port` for
/// Stratum over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl FromStr for PoolUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.trim();
        let (rest, tls) = match rest.split_once("://") {
            Some(("stratum+tcp" | "stratum" | "tcp", r)) => (r, false),
            Some(("stratum+ssl" | "stratum+tls" | "ssl" | "tls", r)) => (r, true),
            Some((scheme, _)) => {
                return Err(format!(
                    "{s:?}: unsupported scheme {scheme:?} (use stratum+tcp:// or stratum+ssl://)"
                ))
            }
            None => (rest, false),
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected stratum+tcp://host:port"))?;
        let port = port
            .parse()
            .map_err(|_| format!("{s:?}: bad port {port:?}"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(format!("{s:?}: empty host"));
        }
        Ok(PoolUrl {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

impl std::fmt::Display for PoolUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls {
            "stratum+ssl"
        } else {
            "stratum+tcp"
        };
        write!(f, "{scheme}://{}:{}", self.host, self.port)
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number of shares per second"))?;
    if v.is_finite() && (0.1..=100_000.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s:?}: between 0.1 and 100000 shares per second"))
    }
}

/// `500ms`, `30s`, `1.5m`, `1h` (humantime's units), or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let out_of_range = || format!("{s:?} is out of range for a duration");
    match s.parse::<f64>() {
        Ok(secs) if secs >= 0.0 => Duration::try_from_secs_f64(secs).map_err(|_| out_of_range()),
        Ok(_) => Err(format!("{s:?}: a duration is not negative")),
        Err(_) => humantime::parse_duration(s).map_err(|e| match e {
            humantime::DurationError::NumberOverflow => out_of_range(),
            humantime::DurationError::UnknownUnit { unit, .. } => {
                format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")
            }
            e => format!("{s:?} is not a duration (like 500ms, 30s, 10m, 1h): {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations_parse_and_bad_ones_say_why() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5m").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("10 parsecs")
            .unwrap_err()
            .contains("unknown unit"));
        let huge = parse_duration("99999999999999999999h").unwrap_err();
        assert!(huge.contains("out of range"), "{huge}");
        let err = Config::try_parse_from(["miner-worker", "--status-interval", "1e99h"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--status-interval"), "{err}");
    }

    #[test]
    fn pool_urls_parse() {
        assert_eq!(
            "stratum+tcp://pool.example:3333"
                .parse::<PoolUrl>()
                .unwrap(),
            PoolUrl {
                host: "pool.example".into(),
                port: 3333,
                tls: false,
            }
        );
        let tls = "stratum+ssl://pool.example:4443"
            .parse::<PoolUrl>()
            .unwrap();
        assert!(tls.tls);
        assert_eq!(tls.to_string(), "stratum+ssl://pool.example:4443");
        assert_eq!("127.0.0.1:1".parse::<PoolUrl>().unwrap().port, 1);
        assert!("http://x:1".parse::<PoolUrl>().is_err());
        assert!("stratum+tcp://x".parse::<PoolUrl>().is_err());
    }

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
    fn login_appends_the_rig() {
        let c = Config::try_parse_from(["m", "-o", "h:1", "-u", "addr", "--rig", "r7"]).unwrap();
        assert_eq!(c.login(), "addr.r7");
        let c = Config::try_parse_from(["m", "-o", "h:1", "-u", "addr.x", "--rig", "r7"]).unwrap();
        assert_eq!(c.login(), "addr.x");
    }
}
