//! The worker mines on a `stratum+ssl://` pool that presents the certificate it pinned
//! (`--tls-pin`), and refuses one that presents another: no share goes to an impostor.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::{start_pool, start_worker_at};

fn self_signed(dir: &std::path::Path, name: &str) -> (String, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.key_pair.serialize_pem()).unwrap();
    (crt.display().to_string(), key.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_mines_over_tls_and_only_with_the_pinned_pool() {
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = self_signed(dir.path(), "pool");
    let (impostor, _) = self_signed(dir.path(), "impostor");
    let pool = start_pool(dir.path(), &["--tls-cert", &crt, "--tls-key", &key]).await;
    let url = format!("stratum+ssl://127.0.0.1:{}", pool.stratum[0].port());

    let worker = start_worker_at(&url, "alice.tls", &["--tls-pin", &crt]).await;
    let t = Instant::now();
    while worker.status.accepted.load(Ordering::Relaxed) < 3 {
        assert!(t.elapsed() < Duration::from_secs(60), "no shares over TLS");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tls_sessions = pool.metrics.tls_sessions.get();
    assert_eq!(tls_sessions, 1, "the worker's session is over TLS");
    worker.stop().await;

    let wary = start_worker_at(&url, "alice.wary", &["--tls-pin", &impostor]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(wary.status.accepted.load(Ordering::Relaxed), 0);
    assert!(!wary.status.connected.load(Ordering::Relaxed));
    wary.stop().await;
    pool.stop().await.unwrap();
}
