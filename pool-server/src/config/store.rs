//! Where shares are kept, how they are batched, and how long history lives.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::parse::parse_interval;

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Store")]
pub struct StoreArgs {
    /// Share store: `sqlite://FILE` (embedded default) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://pool.sqlite")]
    pub database_url: String,

    /// Directory of the append-only spool that holds shares while the database is away.
    #[arg(long, env = "POOL_SPOOL_DIR", default_value = "spool")]
    pub spool_dir: PathBuf,

    /// Store: shares per database write.
    #[arg(long, env = "POOL_STORE_BATCH", default_value_t = 2000)]
    pub store_batch: usize,

    /// Store: longest a share waits before its batch is written.
    #[arg(long, env = "POOL_STORE_FLUSH", default_value = "250ms", value_parser = parse_interval)]
    pub store_flush: Duration,

    /// Answer `true` to a share only once it is stored (committed to the database, or in the
    /// spool when the database is away): killing the process then loses no share a miner
    /// was told was accepted. Answers wait up to --store-flush; reading and judging do not.
    #[arg(long, env = "POOL_DURABLE_ACKS")]
    pub durable_acks: bool,

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
}
