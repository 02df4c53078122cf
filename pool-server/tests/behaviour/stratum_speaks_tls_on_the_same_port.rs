//! With a certificate (`--tls-cert`, `--tls-key`) every Stratum port also speaks TLS: a
//! client that opens with a TLS handshake mines over TLS, a plain one as before, on the same
//! port. A client pinning another certificate is refused in the handshake. A renewed
//! certificate is served after SIGHUP without a restart, and a broken one is not taken.

use crate::common;

use std::time::Duration;

use common::process::PoolProcess;
use common::tls::{connect_pinned, self_signed};
use common::*;
use serde_json::Value;

async fn tls_client(addr: std::net::SocketAddr, pinned: &std::path::Path) -> Client {
    let tls = connect_pinned(addr, pinned).await.expect("TLS handshake");
    let (r, w) = tokio::io::split(tls);
    Client::from_halves(Box::new(r), Box::new(w))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_plain_miners_share_one_port() {
    let certs = tempfile::tempdir().unwrap();
    let (crt, key) = self_signed(certs.path(), "pool");
    let (other, _) = self_signed(certs.path(), "other");
    let pool = start_pool(&[
        "--tls-cert",
        crt.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await;

    let mut secure = tls_client(pool.stratum(), &crt).await;
    secure.subscribe().await;
    secure.authorize(WORKER).await.unwrap();
    secure.wait_job().await;
    assert_eq!(secure.share(1).await.0, Ok(Value::Bool(true)));
    assert_eq!(pool.metric("pool_tls_sessions").await, 1.0);

    let mut plain = Client::login(pool.stratum()).await;
    assert_eq!(plain.share(2).await.0, Ok(Value::Bool(true)));
    assert_eq!(pool.metric("pool_tls_sessions").await, 1.0);

    assert!(
        connect_pinned(pool.stratum(), &other).await.is_err(),
        "a client pinning another certificate is refused"
    );
    drop(secure);
    pool.wait_metric("pool_tls_sessions", 0.0).await;
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_after_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = self_signed(dir.path(), "pool");
    let old = dir.path().join("old.crt");
    std::fs::copy(&crt, &old).unwrap();
    let pool = PoolProcess::spawn(
        dir.path(),
        &[
            "--tls-cert",
            crt.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let mut c = tls_client(pool.stratum, &old).await;
    c.subscribe().await;

    // Renewed in place (as certbot does), then SIGHUP.
    let renewed = dir.path().join("renewed");
    std::fs::create_dir(&renewed).unwrap();
    let (new_crt, new_key) = self_signed(&renewed, "pool");
    std::fs::copy(&new_crt, &crt).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    let hup = |pid: u32| unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    hup(pool.pid());
    let mut served_new = false;
    for _ in 0..50 {
        if connect_pinned(pool.stratum, &new_crt).await.is_ok() {
            served_new = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served_new,
        "the renewed certificate is served: {}",
        pool.log_text()
    );
    assert!(connect_pinned(pool.stratum, &old).await.is_err());
    // The session opened before the renewal carries on.
    c.authorize(WORKER).await.unwrap();

    // A broken file: the pool says so and keeps serving the renewed certificate.
    std::fs::write(&crt, "not a certificate").unwrap();
    hup(pool.pid());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(connect_pinned(pool.stratum, &new_crt).await.is_ok());
    assert!(
        pool.log_text().contains("not reloaded"),
        "{}",
        pool.log_text()
    );
    pool.terminate();
}
