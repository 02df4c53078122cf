//! What is logged and how.

use clap::Args;

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log as JSON lines (for ELK or Loki) instead of human-readable text.
    #[arg(long, env = "POOL_LOG_JSON")]
    pub log_json: bool,

    /// Log filter, e.g. `info` or `pool_server=debug`.
    #[arg(long, env = "POOL_LOG", default_value = "info")]
    pub log: String,
}
