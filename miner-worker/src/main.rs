//! `miner-worker`: mine on a Stratum V1 pool, or `--benchmark` the kernels.

use clap::Parser;
use miner_worker::{app, bench, config::Config, logging};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    if let Some(mode) = cfg.benchmark {
        match mode {
            bench::Mode::Quick => bench::run_quick(cfg.thread_count()),
            bench::Mode::Full => bench::run(&bench::Options {
                threads: cfg.thread_count(),
                each: std::time::Duration::from_secs_f64(cfg.bench_secs.max(0.05)),
                runs: 5,
            }),
        }
        return Ok(());
    }
    logging::init(&cfg.log, cfg.log_json)?;
    let running = app::start(&cfg).await?;
    shutdown_signal().await;
    running.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
