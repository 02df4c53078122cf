//! What the worker's end-to-end tests share: our pool in-process on loopback ports, with its
//! SQLite database and spool in a test's temp dir, and our worker pointed at it.

#![allow(dead_code)] // each behaviour module uses its own part of this module

use std::net::SocketAddr;
use std::path::Path;

use clap::Parser;

pub mod scripted_pool;

/// A pool on 127.0.0.1 (ports chosen by the OS) storing under `dir`, started at difficulty
/// 0.001 so a one-thread worker finds shares at once, with `extra` flags appended.
pub async fn start_pool(dir: &Path, extra: &[&str]) -> pool_server::app::Running {
    let d = dir.display().to_string();
    let db = format!("sqlite://{d}/pool.sqlite");
    let spool = format!("{d}/spool");
    let mut args = vec![
        "pool-server",
        "--stratum",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
        "--database-url",
        &db,
        "--spool-dir",
        &spool,
        "--start-difficulty",
        "0.001",
        "--log",
        "warn",
    ];
    args.extend_from_slice(extra);
    let cfg = pool_server::config::Config::try_parse_from(args).expect("pool flags");
    pool_server::app::start(cfg).await.expect("pool starts")
}

/// A one-thread worker mining on `pool` as `login`, with `extra` flags appended. It mines at
/// normal priority: other tests share the machine, and the default (idle) would let them
/// starve this one of every cycle.
pub async fn start_worker(
    pool: SocketAddr,
    login: &str,
    extra: &[&str],
) -> miner_worker::app::Running {
    start_worker_at(&format!("stratum+tcp://{pool}"), login, extra).await
}

/// [`start_worker`] on the pool URL `url` (`stratum+ssl://...` for TLS).
pub async fn start_worker_at(url: &str, login: &str, extra: &[&str]) -> miner_worker::app::Running {
    let url = url.to_owned();
    let mut args = vec![
        "miner-worker",
        "-o",
        &url,
        "-u",
        login,
        "-t",
        "1",
        "--cpu-priority",
        "normal",
        "--log",
        "warn",
    ];
    args.extend_from_slice(extra);
    let cfg = miner_worker::config::Config::try_parse_from(args).expect("worker flags");
    miner_worker::app::start(&cfg).await.expect("worker starts")
}
