//! The worker mines on our pool-server: shares are accepted, a block is found and accepted by
//! the embedded chain, and when the pool is stopped and started again on the same port the
//! worker is mining again within seconds.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use miner_worker::app;
use miner_worker::config::Config as WorkerConfig;
use pool_server::config::Config as PoolConfig;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_pool(dir: &std::path::Path, port: u16) -> pool_server::app::Running {
    let block_bits = protocol::Difficulty::new(0.002)
        .unwrap()
        .to_target()
        .to_compact()
        .to_string();
    let args = [
        "pool-server".to_string(),
        "--stratum".into(),
        format!("127.0.0.1:{port}"),
        "--http".into(),
        "127.0.0.1:0".into(),
        "--database-url".into(),
        format!("sqlite://{}/pool.sqlite", dir.display()),
        "--spool-dir".into(),
        format!("{}/spool", dir.display()),
        "--start-difficulty".into(),
        "0.0002".into(),
        "--vardiff-min".into(),
        "0.0001".into(),
        "--genesis-bits".into(),
        block_bits,
        "--log".into(),
        "warn".into(),
    ];
    let cfg = PoolConfig::try_parse_from(args).unwrap();
    pool_server::app::start(cfg).await.unwrap()
}

async fn until<F: Fn() -> bool>(what: &str, limit: Duration, f: F) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_gets_accepted_shares_and_a_block_and_survives_a_pool_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let pool = start_pool(dir.path(), port).await;
    let cfg = WorkerConfig::try_parse_from([
        "miner-worker",
        "-o",
        &format!("stratum+tcp://127.0.0.1:{port}"),
        "-u",
        "alice.rig1",
        "-t",
        "1",
        // Normal priority: other tests share the machine (the default, idle, yields to them).
        "--cpu-priority",
        "normal",
        "--retry-max",
        "1s",
        "--log",
        "warn",
    ])
    .unwrap();
    let worker = app::start(&cfg).await.unwrap();
    let status = worker.status.clone();
    until("accepted shares", Duration::from_secs(30), || {
        status.accepted.load(Ordering::Relaxed) >= 5
    })
    .await;

    // A block: the pool's chain moves past height 1 and /api/blocks names our worker.
    let api = format!("http://{}/api/blocks", pool.http);
    let t = Instant::now();
    let block = loop {
        let blocks: serde_json::Value = reqwest::get(&api).await.unwrap().json().await.unwrap();
        if let Some(b) = blocks
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["worker"] == "alice.rig1" && b["status"] == "accepted")
        {
            break b.clone();
        }
        assert!(t.elapsed() < Duration::from_secs(60), "no block found");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(block["height"].as_i64().unwrap() >= 1);
    // Blocks come every second or so here, so a share can cross the pool's new-tip notify on
    // the wire and be refused as stale: that race is part of mining. Any other reason is a
    // disagreement between worker and pool.
    let reasons = status.reasons();
    let accepted = status.accepted.load(Ordering::Relaxed);
    let not_stale: u64 = reasons
        .iter()
        .filter(|(r, _)| r.as_str() != "stale")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(not_stale, 0, "rejects other than stale: {reasons:?}");
    let stale = reasons.get("stale").copied().unwrap_or(0);
    eprintln!("accepted {accepted}, rejected {reasons:?}");
    assert!(
        stale * 5 <= accepted,
        "too many stale shares: {stale} against {accepted} accepted"
    );

    // Kill the pool and bring it back on the same port.
    pool.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = status.accepted.load(Ordering::Relaxed);
    let pool = start_pool(dir.path(), port).await;
    let back = Instant::now();
    until("shares after the restart", Duration::from_secs(20), || {
        status.accepted.load(Ordering::Relaxed) > before
    })
    .await;
    eprintln!(
        "mining again {:.1} s after the pool returned",
        back.elapsed().as_secs_f64()
    );
    worker.stop().await;
    pool.stop().await.unwrap();
}
