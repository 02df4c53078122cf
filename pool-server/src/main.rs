//! `pool-server`: parse the config, start the pool, run until SIGINT/SIGTERM, shut down
//! gracefully.

use pool_server::{app, config::Config, logging, shutdown};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::load()?;
    logging::init(&cfg.logging.log, cfg.logging.log_json)?;
    let running = app::start(cfg).await?;
    shutdown::signal().await;
    running.stop().await
}
