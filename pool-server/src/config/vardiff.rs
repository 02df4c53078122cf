//! How each channel's difficulty is steered.

use std::time::Duration;

use clap::Args;
use protocol::Difficulty;

use super::parse::parse_interval;

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Vardiff")]
pub struct VardiffArgs {
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

    /// Vardiff: lowest difficulty.
    #[arg(long, env = "POOL_VARDIFF_MIN", default_value = "0.001")]
    pub vardiff_min: Difficulty,

    /// Vardiff: highest difficulty.
    #[arg(long, env = "POOL_VARDIFF_MAX", default_value = "1e15")]
    pub vardiff_max: Difficulty,
}
