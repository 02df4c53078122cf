//! Everything an operator can set: one clap flag each, each with an environment variable, and
//! an optional TOML config file whose keys are the long flag names.
//!
//! The flags come in groups, one per concern, each in a file of its own here; `--help` shows
//! them in those sections. Precedence is command line, then environment, then config file,
//! then the default. The file is applied by exporting each of its keys as the flag's
//! environment variable when that variable is unset, so the three sources cannot drift apart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser};

mod alerts;
mod chain;
mod edge;
mod http;
mod logging;
mod node;
mod p2p;
pub mod parse;
mod rewards;
mod store;
mod stratum;
mod vardiff;

pub use alerts::AlertArgs;
pub use chain::ChainArgs;
pub use edge::EdgeArgs;
pub use http::HttpArgs;
pub use logging::LogArgs;
pub use node::NodeArgs;
pub use p2p::P2pArgs;
pub use parse::{parse_duration, parse_interval, FeeBps, Listener};
pub use rewards::RewardArgs;
pub use store::StoreArgs;
pub use stratum::StratumArgs;
pub use vardiff::VardiffArgs;

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

    #[command(flatten)]
    pub stratum: StratumArgs,

    #[command(flatten)]
    pub vardiff: VardiffArgs,

    #[command(flatten)]
    pub edge: EdgeArgs,

    #[command(flatten)]
    pub chain: ChainArgs,

    #[command(flatten)]
    pub node: NodeArgs,

    #[command(flatten)]
    pub p2p: P2pArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub rewards: RewardArgs,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub alerts: AlertArgs,

    #[command(flatten)]
    pub logging: LogArgs,
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
        if self.vardiff.vardiff_min > self.vardiff.vardiff_max {
            bail!("--vardiff-min must not exceed --vardiff-max");
        }
        if !(0.0..1.0).contains(&self.vardiff.vardiff_variance) {
            bail!("--vardiff-variance must be in [0, 1)");
        }
        if self.vardiff.vardiff_target < Duration::from_millis(50) {
            bail!("--vardiff-target must be at least 50ms: no miner's shares are steered finer");
        }
        if self.vardiff.vardiff_retarget < Duration::from_millis(100) {
            bail!("--vardiff-retarget must be at least 100ms: a retarget needs shares to read");
        }
        if self.edge.edge_id.is_some() && self.stratum.extranonce1_size < 3 {
            bail!(
                "--edge-id needs --extranonce1-size 3 or more: its first byte names the edge, \
                 and the rest must leave each edge room for its miners"
            );
        }
        if self.edge.edge_id.is_some()
            && !crate::store::Backend::is_postgres(&self.store.database_url)
        {
            bail!(
                "--edge-id needs a PostgreSQL --database-url: the edges of one pool share it \
                 (a SQLite file belongs to one pool-server)"
            );
        }
        if self.stratum.job_refresh < Duration::from_millis(100) {
            bail!("--job-refresh must be at least 100ms: faster, a miner's shares go stale before they arrive");
        }
        if !(1..=10_000_000).contains(&self.stratum.max_connections)
            || !(1..=10_000_000).contains(&self.stratum.max_connections_per_ip)
        {
            bail!("--max-connections and --max-connections-per-ip must be 1 to 10000000");
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.stratum.max_line) {
            bail!("--max-line must be 1024 bytes to 16 MiB: a mining.notify with a merkle branch is longer than 1 KiB, and a session holds a line in memory");
        }
        if self
            .http
            .api_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            bail!("--api-token (POOL_API_TOKEN) is empty: set a secret, or unset it to keep the admin endpoints off");
        }
        if let Some(limit) = self.chain.pow_limit {
            let (limit_t, genesis_t) = (limit.to_target(), self.chain.genesis_bits.to_target());
            if let (Ok(l), Ok(g)) = (limit_t, genesis_t) {
                if l < g {
                    bail!(
                        "--pow-limit {limit} is harder than --genesis-bits {}: the genesis would \
                         break its own chain's limit (give bits at least as easy, such as 207fffff)",
                        self.chain.genesis_bits
                    );
                }
            }
        }
        if self.store.store_batch == 0 || self.store.store_queue == 0 {
            bail!("--store-batch and --store-queue must be positive");
        }
        if !self.stratum.account_pattern.is_empty() {
            regex::Regex::new(&self.stratum.account_pattern).context("--account-pattern")?;
        }
        if self.rewards.pool_tag.len() > 40 {
            bail!("--pool-tag must be at most 40 bytes (the coinbase scriptSig holds 100)");
        }
        if self.node.node_rpc_url.is_some()
            && self.node.node_rpc_cookie.is_none()
            && (self.node.node_rpc_user.is_none() != self.node.node_rpc_password.is_none())
        {
            bail!("--node-rpc-user and --node-rpc-password go together (or use --node-rpc-cookie)");
        }
        if self.stratum.listeners.is_empty() {
            bail!("at least one --stratum listener is required");
        }
        if self.node.node_rpc_url.is_some()
            && (self.p2p.p2p_listen.is_some() || !self.p2p.peers.is_empty())
        {
            bail!("--p2p-listen and --peer network the embedded chain; with --node-rpc-url the node does its own peering");
        }
        if self.rewards.payout_method == crate::rewards::PayoutMethod::Wallet
            && self.node.node_rpc_url.is_none()
        {
            bail!("--payout-method wallet pays from the node's wallet: it needs --node-rpc-url");
        }
        if self.rewards.payout_method == crate::rewards::PayoutMethod::Coinbase {
            if self.rewards.reward_scheme == crate::rewards::Scheme::Solo {
                bail!("--payout-method coinbase pays the window's accounts in every job, but under --reward-scheme solo the payee is only known once a block is found: use --payout-method wallet or none");
            }
            if self.rewards.pool_fee_address.is_none() {
                bail!("--payout-method coinbase needs --pool-fee-address: the pool's own output (fee, dust, accounts without an address)");
            }
        }
        if self.p2p.max_outbound > self.p2p.max_peers {
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
    use super::parse::parse_fee;
    use super::*;

    #[test]
    fn help_reads_in_sections_one_per_concern() {
        let help = Config::command().render_long_help().to_string();
        let mut at = 0;
        for heading in [
            "Stratum:",
            "Vardiff:",
            "Embedded chain:",
            "Node:",
            "Network of pools:",
            "Store:",
            "Rewards and payouts:",
            "HTTP:",
            "Logging:",
        ] {
            let found = help[at..]
                .find(&format!("\n{heading}\n"))
                .unwrap_or_else(|| panic!("no section {heading} after byte {at}:\n{help}"));
            at += found + heading.len();
        }
        // Each flag sits in its concern's section.
        let section = |flag: &str| {
            let i = help.find(&format!("--{flag} ")).unwrap();
            help[..i]
                .lines()
                .rev()
                .find(|l| !l.starts_with(' ') && l.ends_with(':'))
                .map(|l| l.trim_end_matches(':').to_owned())
        };
        assert_eq!(section("vardiff-min").as_deref(), Some("Vardiff"));
        assert_eq!(section("peer").as_deref(), Some("Network of pools"));
        assert_eq!(
            section("payout-threshold").as_deref(),
            Some("Rewards and payouts")
        );
        assert_eq!(section("database-url").as_deref(), Some("Store"));
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
    fn durations_take_compound_and_fractional_forms() {
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0.25").unwrap(), Duration::from_millis(250));
        let err = parse_duration("36501d").unwrap_err();
        assert!(err.contains("at most"), "{err}");
        let err = parse_duration("10 parsecs").unwrap_err();
        assert!(err.contains("unknown unit"), "{err}");
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
