//! HTTP clients cannot hold the pool's descriptors: a half-sent request or an idle connection
//! is closed after the header timeout, connections past the per-address cap are closed at
//! once, and everyone else (and Stratum) is still served meanwhile.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

async fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(src.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    s.connect(to).await.unwrap()
}

/// How long until the pool closes `s` (reading until EOF), at most `limit`.
async fn closed_after(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_http_clients_are_closed() {
    let pool = start_pool(&["--http-header-timeout", "700ms"]).await;
    let mut half = TcpStream::connect(pool.running.http).await.unwrap();
    half.write_all(b"GET /api/pool HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(pool.running.http).await.unwrap();
    let (a, b) = tokio::join!(
        closed_after(&mut half, Duration::from_secs(5)),
        closed_after(&mut idle, Duration::from_secs(5))
    );
    assert!(
        a.is_some_and(|t| t < Duration::from_secs(3)),
        "half-sent: {a:?}"
    );
    assert!(b.is_some_and(|t| t < Duration::from_secs(3)), "idle: {b:?}");
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_others_still_served() {
    let pool = start_pool(&[
        "--http-max-connections-per-ip",
        "4",
        "--http-header-timeout",
        "30s",
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.41", pool.running.http).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = connect_from("127.0.0.41", pool.running.http).await;
    let closed = closed_after(&mut extra, Duration::from_secs(2)).await;
    assert!(
        closed.is_some(),
        "the fifth connection from one address is closed"
    );
    // Another address still gets answers, and Stratum still accepts miners.
    let r = reqwest::get(format!("{}/healthz", pool.http()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    Client::login(pool.stratum()).await;
    // A held connection still works: the cap refused only what was past it.
    held[0]
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    held[0].read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    pool.stop().await;
}
