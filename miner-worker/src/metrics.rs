//! Optional `/metrics` for the worker's own view: hashrate, shares by result and reason,
//! connection state, difficulty, and which kernel runs.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use prometheus::{Encoder, Gauge, GaugeVec, IntGauge, Opts, Registry, TextEncoder};
use tokio_util::sync::CancellationToken;

use crate::status::Status;

fn render(status: &Status, kernel: &str, threads: usize) -> String {
    let r = Registry::new();
    let hashrate =
        Gauge::new("miner_hashrate_hps", "Hashes per second over the last 30 s").unwrap();
    hashrate.set(status.hashrate(Duration::from_secs(30)));
    let shares = GaugeVec::new(
        Opts::new(
            "miner_shares_total",
            "Shares answered by the pool, by result and reason",
        ),
        &["result", "reason"],
    )
    .unwrap();
    shares
        .with_label_values(&["accepted", ""])
        .set(status.accepted.load(Ordering::Relaxed) as f64);
    for (reason, n) in status.reasons() {
        shares
            .with_label_values(&["rejected", &reason])
            .set(n as f64);
    }
    let dropped = GaugeVec::new(
        Opts::new(
            "miner_shares_dropped_total",
            "Shares found but not submitted: the queue to the pool was full, or the submit rate cap was reached",
        ),
        &["reason"],
    )
    .unwrap();
    for (reason, n) in status.dropped() {
        dropped.with_label_values(&[reason]).set(n as f64);
    }
    let connected = IntGauge::new("miner_connected", "1 while connected to a pool").unwrap();
    connected.set(status.connected.load(Ordering::Relaxed) as i64);
    let difficulty = Gauge::new("miner_difficulty", "The pool's current share difficulty").unwrap();
    difficulty.set(status.difficulty());
    let info = GaugeVec::new(
        Opts::new("miner_kernel_info", "The search kernel in use"),
        &["kernel", "threads"],
    )
    .unwrap();
    info.with_label_values(&[kernel, &threads.to_string()])
        .set(1.0);
    for m in [
        Box::new(hashrate) as Box<dyn prometheus::core::Collector>,
        Box::new(shares),
        Box::new(dropped),
        Box::new(connected),
        Box::new(difficulty),
        Box::new(info),
    ] {
        r.register(m).expect("unique metric names");
    }
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&r.gather(), &mut buf)
        .expect("text encoding");
    String::from_utf8(buf).expect("utf-8")
}

/// Serve `/metrics` on `addr` until shutdown; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    status: Arc<Status>,
    kernel: &'static str,
    threads: usize,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let status = status.clone();
            async move { render(&status, kernel, threads) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    });
    Ok(bound)
}
